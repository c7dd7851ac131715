//! `#[derive(Mirror)]`: a `#[napi(object)]` struct of netcore's binding
//! layer that mirrors a domain type gets `Wire<Self>` implemented for that
//! type, field by field, in both directions:
//!
//! ```ignore
//! #[napi(object)]
//! #[derive(Mirror)]
//! #[mirror(link::BridgeSpec)]
//! pub struct BridgeSpec {
//!     pub name: String,
//!     /// default true
//!     #[mirror(default = true)]
//!     pub up: Option<bool>,
//! }
//! ```
//!
//! The domain value is built with a struct literal naming every field of the
//! binding struct, so the two cannot drift apart without a compile error.
//! `#[mirror(default = expr)]` gives the domain value of a field JavaScript
//! left out. The trait and the per-type conversions live in the crate that
//! uses this (`netcore::binding::mirror`); this crate only writes the impl.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Expr, Fields, Path};

#[proc_macro_derive(Mirror, attributes(mirror))]
pub fn derive_mirror(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let domain = domain_of(input)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(name, "Mirror: only structs"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(name, "Mirror: only named fields"));
    };
    let mut from_js = Vec::new();
    let mut to_js = Vec::new();
    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        let label = ident.to_string();
        let convert = quote! { crate::binding::mirror::Wire::from_js };
        from_js.push(match default_of(field)? {
            None => quote! { #ident: #convert(js.#ident, #label)? },
            Some(default) => quote! {
                #ident: match js.#ident {
                    Some(v) => #convert(v, #label)?,
                    None => #default,
                }
            },
        });
        to_js.push(quote! { #ident: crate::binding::mirror::Wire::to_js(self.#ident) });
    }
    Ok(quote! {
        impl crate::binding::mirror::Wire<#name> for #domain {
            fn from_js(js: #name, _field: &'static str) -> crate::error::Result<Self> {
                Ok(Self { #(#from_js,)* })
            }

            fn to_js(self) -> #name {
                #name { #(#to_js,)* }
            }
        }
    })
}

/// The domain type named by `#[mirror(path::To::Type)]`.
fn domain_of(input: &DeriveInput) -> syn::Result<Path> {
    input
        .attrs
        .iter()
        .find(|a| a.path().is_ident("mirror"))
        .map(|a| a.parse_args::<Path>())
        .unwrap_or_else(|| {
            Err(syn::Error::new_spanned(
                &input.ident,
                "Mirror: name the domain type with #[mirror(path::To::Type)]",
            ))
        })
}

/// The expression of `#[mirror(default = expr)]` on a field, if any.
fn default_of(field: &syn::Field) -> syn::Result<Option<Expr>> {
    let mut default = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("mirror")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("default") {
                default = Some(meta.value()?.parse::<Expr>()?);
                Ok(())
            } else {
                Err(meta.error("Mirror: expected `default = expr`"))
            }
        })?;
    }
    Ok(default)
}
