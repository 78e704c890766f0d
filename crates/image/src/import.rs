//! Import (in progress).
