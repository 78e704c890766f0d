//! Progress (in progress).
