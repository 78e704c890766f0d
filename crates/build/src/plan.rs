//! The whole-build view the executor starts from: meta args, stage graph,
//! the target and the stages to build, in order.

use crate::args::{unused_build_args, BuildOptions, MetaScope};
use crate::dockerfile::Dockerfile;
use crate::stages::StageGraph;
use crate::Error;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// Meta args (for `StageState::new`).
    pub meta: MetaScope,
    /// All stages with resolved references.
    pub graph: StageGraph,
    /// The target stage index.
    pub target: usize,
    /// Stages to build, dependencies first, ending with `target`.
    pub order: Vec<usize>,
    /// `--build-arg`s no ARG declares (Docker warns: "One or more build-args
    /// [..] were not consumed").
    pub unused_build_args: Vec<String>,
}

/// Resolve what `opts` asks of `df`.
pub fn plan(df: &Dockerfile, opts: &BuildOptions) -> Result<BuildPlan, Error> {
    let meta = MetaScope::new(df, opts)?;
    let graph = StageGraph::build(df, &meta)?;
    let target = graph.target(opts.target.as_deref())?;
    let order = graph.needed(target);
    tracing::info!(
        target: "explain::build",
        "build stages {:?} for target {}",
        order,
        df.stages[target].name.clone().unwrap_or_else(|| target.to_string())
    );
    Ok(BuildPlan {
        meta,
        graph,
        target,
        order,
        unused_build_args: unused_build_args(df, opts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    #[test]
    fn plan_target_and_unused_args() {
        let df = parse(
            "FROM a AS base\nARG USED\nFROM base AS dev\nFROM a AS prod\nCOPY --from=base /x /x\n",
        )
        .unwrap();
        let mut opts = BuildOptions {
            target: Some("dev".into()),
            ..Default::default()
        };
        opts.build_args.insert("USED".into(), "1".into());
        opts.build_args.insert("EXTRA".into(), "1".into());
        let p = plan(&df, &opts).unwrap();
        assert_eq!((p.target, p.order.clone()), (1, vec![0, 1]));
        assert_eq!(p.unused_build_args, vec!["EXTRA".to_string()]);
        opts.target = None;
        assert_eq!(plan(&df, &opts).unwrap().order, vec![0, 2]);
        opts.target = Some("missing".into());
        assert!(plan(&df, &opts).unwrap_err().is_user_error());
    }
}
