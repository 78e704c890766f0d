//! nftables: one table `inet minicompose` shared by every `--root` on the
//! host; each root owns its own base chains (suffix = a hash of the root)
//! and rewrites them whole from its state in one `nft -f` transaction.
//! Rebuilding from state (rather than adding and deleting single rules)
//! makes every command repair what a killed process left half-done.

mod apply;
mod rules;

pub use apply::{apply, nft_available};
pub use rules::{render, root_key, RuleSet};
