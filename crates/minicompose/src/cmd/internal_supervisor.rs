//! `__internal supervisor PROJECT`: the per-project supervisor process
//! (started detached by `up`; see mc_engine::supervisor).

use crate::global::Global;

pub fn run(g: &Global, project: &str) -> anyhow::Result<i32> {
    let eng = super::compose::engine(g, false)?;
    Ok(mc_engine::supervisor::main(eng, project)?)
}
