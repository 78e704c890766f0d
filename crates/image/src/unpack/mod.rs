//! Layer unpacking (filled in below).

use std::path::Path;

/// Remove a directory tree we own, without following symlinks.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(path)
}
