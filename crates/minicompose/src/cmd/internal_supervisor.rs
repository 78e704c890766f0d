//! `__internal supervisor PROJECT`: the per-project supervisor process
//! (started detached by `up`; see mc_engine::supervisor).

use crate::global::Global;

pub fn run(g: &Global, project: &str) -> anyhow::Result<i32> {
    let eng = super::compose::engine(g, false)?;
    Ok(mc_engine::supervisor::main(eng, project)?)
}

/// `__internal compose-net`: one network request (JSON on stdin) from a
/// container's monitor, done in a fresh process (see mc_engine::netattach).
pub fn net(g: &Global) -> anyhow::Result<i32> {
    use std::io::Read as _;
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;
    let req: mc_engine::netattach::HelperRequest = serde_json::from_slice(&body)?;
    let mut eng = super::compose::engine(g, false)?;
    eng.net.helper = None;
    match eng.net.serve(&req) {
        Ok(()) => Ok(0),
        Err(mc_net::Error::Invalid(m)) => Err(crate::exit::user_error(m)),
        Err(e) => Err(e.into()),
    }
}
