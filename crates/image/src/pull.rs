//! Pulling an image (in progress).
use crate::{Error, LocalImage, PullOptions, Reference, Store};

pub async fn pull(_store: &Store, r: &Reference, _opts: &PullOptions) -> Result<LocalImage, Error> {
    Err(Error::Other(anyhow::anyhow!(
        "pull {r}: not implemented yet"
    )))
}
