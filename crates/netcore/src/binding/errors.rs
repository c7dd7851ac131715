//! The error codes a rejection of the addon can carry, for the TypeScript
//! contract: the same list as [`crate::error::ErrorCode`], never a copy.

use napi_derive::napi;

use crate::error::{with_error_codes, ErrorCode};

macro_rules! native_error_code {
    ($( $(#[$doc:meta])* $variant:ident = $code:tt, )*) => {
        // `#[doc]` with a plain string: napi copies doc comments that went
        // through a macro into index.d.ts as raw strings (r"…").
        #[doc = "A code a native rejection carries as `err.code`."]
        #[napi(string_enum)]
        pub enum NativeErrorCode {
            $( #[napi(value = $code)] $variant, )*
        }

        impl From<ErrorCode> for NativeErrorCode {
            fn from(code: ErrorCode) -> Self {
                match code {
                    $(ErrorCode::$variant => NativeErrorCode::$variant,)*
                }
            }
        }
    };
}

with_error_codes!(native_error_code);

/// Every code a native rejection can carry.
#[napi]
pub fn error_codes() -> Vec<NativeErrorCode> {
    ErrorCode::ALL.iter().map(|&c| c.into()).collect()
}
