//! OCI whiteouts: what an entry name means for the layers below.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub const PREFIX: &str = ".wh.";
pub const OPAQUE: &str = ".wh..wh..opq";
/// The xattr overlayfs reads on a directory that hides the layers below.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A normal entry.
    Plain,
    /// `.wh..wh..opq`: its directory hides all lower children.
    Opaque,
    /// `.wh.NAME`: NAME is deleted from the layers below.
    Whiteout(&'a OsStr),
    /// Other `.wh..wh.*` (aufs bookkeeping): ignored, as Docker does.
    Meta,
}

/// Classify the last component of an entry path.
pub fn classify(base: &OsStr) -> Result<Kind<'_>, String> {
    let b = base.as_bytes();
    if b == OPAQUE.as_bytes() {
        return Ok(Kind::Opaque);
    }
    if b.starts_with(b".wh..wh.") {
        return Ok(Kind::Meta);
    }
    match b.strip_prefix(PREFIX.as_bytes()) {
        Some(rest) if rest.is_empty() || rest == b"." || rest == b".." => {
            Err(format!("invalid whiteout \"{}\"", base.to_string_lossy()))
        }
        Some(rest) => Ok(Kind::Whiteout(OsStr::from_bytes(rest))),
        None => Ok(Kind::Plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        fn c(s: &str) -> Result<Kind<'_>, String> {
            classify(OsStr::new(s))
        }
        assert_eq!(c("file").unwrap(), Kind::Plain);
        assert_eq!(c(".whatever").unwrap(), Kind::Plain);
        assert_eq!(c(".wh..wh..opq").unwrap(), Kind::Opaque);
        assert_eq!(c(".wh..wh.plnk").unwrap(), Kind::Meta);
        assert_eq!(c(".wh.foo").unwrap(), Kind::Whiteout(OsStr::new("foo")));
        assert_eq!(
            c(".wh..hidden").unwrap(),
            Kind::Whiteout(OsStr::new(".hidden"))
        );
        assert!(c(".wh.").is_err());
        assert!(c(".wh..").is_err());
        assert!(c(".wh...").is_err());
    }
}
