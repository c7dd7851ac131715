//! The one error type of netcore: a stable code, a human message with context,
//! and the offending values (errno, interface name, netns name).

use std::fmt;
use std::io;

/// The stable error codes, listed once: each variant with the string
/// JavaScript sees as `err.code`. `with_error_codes!(m)` hands the list to
/// macro `m`; below it defines [`ErrorCode`], and the binding defines from the
/// same list the `NativeErrorCode` union of the addon's TypeScript contract.
macro_rules! with_error_codes {
    ($m:path) => {
        $m! {
            /// The kernel refused a request for a reason not covered below.
            Kernel = "ERR_KERNEL",
            /// EPERM / EACCES.
            Permission = "ERR_PERMISSION",
            /// A name, address, key or value failed validation.
            InvalidArgument = "ERR_INVALID_ARGUMENT",
            /// /run/netns/NAME does not exist.
            NetnsNotFound = "ERR_NETNS_NOT_FOUND",
            /// /run/netns/NAME already exists.
            NetnsExists = "ERR_NETNS_EXISTS",
            /// A link looked up by name or index does not exist.
            LinkNotFound = "ERR_LINK_NOT_FOUND",
            /// A link of that name already exists.
            LinkExists = "ERR_LINK_EXISTS",
            /// A published host port (proto, host address, port) is already mapped.
            PortAllocated = "ERR_PORT_ALLOCATED",
            /// A file or thread operation failed outside netlink.
            Io = "ERR_IO",
            /// CNM_FAULT named this step (test builds only).
            FaultInjected = "ERR_FAULT_INJECTED",
            /// The kernel lacks the feature asked for (a module such as 8021q).
            NotSupported = "ERR_NOT_SUPPORTED",
        }
    };
}
pub(crate) use with_error_codes;

macro_rules! define_error_code {
    ($( $(#[$doc:meta])* $variant:ident = $code:tt, )*) => {
        /// Stable error codes; `as_str()` is what JavaScript sees as `err.code`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

with_error_codes!(define_error_code);

#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub errno: Option<i32>,
    pub ifname: Option<String>,
    pub netns: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Human text for an errno, without std's " (os error N)" suffix.
pub fn errno_text(errno: i32) -> String {
    // nl::send's answer when a reply was dropped by a full netlink receive buffer
    if errno == libc::ENOBUFS {
        return "netlink reply lost to a full receive buffer (the request may have taken effect)"
            .into();
    }
    // nl::send's answer for a request made on a connection already dropped: after
    // such a loss, or when its netns was released meanwhile
    if errno == libc::ECONNRESET {
        return "netlink connection closed before the request was sent; try again".into();
    }
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            errno: None,
            ifname: None,
            netns: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    /// Maps an errno by value: EPERM/EACCES -> permission, anything else ->
    /// kernel. Callers that know better (EEXIST on create, ENODEV on lookup)
    /// match those first.
    pub fn from_errno(errno: i32, context: impl fmt::Display) -> Self {
        let code = match errno {
            libc::EPERM | libc::EACCES => ErrorCode::Permission,
            _ => ErrorCode::Kernel,
        };
        Error::with_errno(code, errno, context)
    }

    pub fn with_errno(code: ErrorCode, errno: i32, context: impl fmt::Display) -> Self {
        let mut e = Error::new(code, format!("{context}: {}", errno_text(errno)));
        e.errno = Some(errno);
        e
    }

    /// An io::Error from a file or thread operation: errno-mapped when it has
    /// one, ERR_IO otherwise.
    pub fn from_io(err: &io::Error, context: impl fmt::Display) -> Self {
        match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                let errno = err.raw_os_error().unwrap_or(libc::EPERM);
                Error::with_errno(ErrorCode::Permission, errno, context)
            }
            Some(errno) => Error::with_errno(ErrorCode::Io, errno, context),
            None => Error::new(ErrorCode::Io, format!("{context}: {err}")),
        }
    }

    /// Says what the caller was doing, for an error passed up from a step
    /// that did not know it: "what: message". Code and fields are kept.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The error of a step whose undo (`undo`, saying what it was and why it
    /// failed) failed as well: both stay in the message.
    pub fn undo_failed(mut self, undo: impl fmt::Display) -> Self {
        self.message = format!("{}; undoing it failed too: {undo}", self.message);
        self
    }

    /// [`Error::undo_failed`] when the undo's result is an error.
    pub fn with_undo<T>(self, undo: Result<T>) -> Self {
        match undo {
            Ok(_) => self,
            Err(u) => self.undo_failed(u.message),
        }
    }

    pub fn ifname(mut self, ifname: &str) -> Self {
        self.ifname = Some(ifname.to_string());
        self
    }

    pub fn netns(mut self, netns: Option<&str>) -> Self {
        if let Some(n) = netns {
            self.netns = Some(n.to_string());
        }
        self
    }

    /// The JSON body carried in the JavaScript error's message.
    pub fn to_json(&self) -> String {
        let mut body = serde_json::Map::new();
        body.insert("code".into(), self.code.as_str().into());
        body.insert("message".into(), self.message.clone().into());
        if let Some(errno) = self.errno {
            body.insert("errno".into(), errno.into());
        }
        if let Some(ifname) = &self.ifname {
            body.insert("ifname".into(), ifname.clone().into());
        }
        if let Some(netns) = &self.netns {
            body.insert("netns".into(), netns.clone().into());
        }
        serde_json::Value::Object(body).to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// Where a netns argument is shown in messages.
pub fn ns_label(netns: Option<&str>) -> &str {
    netns.unwrap_or("<process>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping_and_json() {
        let e = Error::from_errno(libc::EEXIST, "create veth v0 in netns n1")
            .ifname("v0")
            .netns(Some("n1"));
        assert_eq!(e.code, ErrorCode::Kernel);
        assert_eq!(e.message, "create veth v0 in netns n1: File exists");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["code"], "ERR_KERNEL");
        assert_eq!(v["errno"], 17);
        assert_eq!(v["ifname"], "v0");
        assert_eq!(v["netns"], "n1");
        assert_eq!(
            Error::from_errno(libc::EPERM, "x").code,
            ErrorCode::Permission
        );
    }

    #[test]
    fn context_and_undo_keep_code_and_fields() {
        let e = Error::from_errno(libc::EEXIST, "create bridge br0")
            .ifname("br0")
            .netns(Some("n1"))
            .context("ensure bridge br0 in netns n1");
        assert_eq!(
            e.message,
            "ensure bridge br0 in netns n1: create bridge br0: File exists"
        );
        assert_eq!((e.code, e.errno), (ErrorCode::Kernel, Some(libc::EEXIST)));
        let undo: Result<()> = Err(Error::new(ErrorCode::Kernel, "delete br0: Busy"));
        let e = e.with_undo(undo).with_undo(Ok(()));
        assert!(e
            .message
            .ends_with("File exists; undoing it failed too: delete br0: Busy"));
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["code", "errno", "ifname", "message", "netns"]);
    }
}
