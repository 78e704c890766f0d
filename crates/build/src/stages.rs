//! The stage graph: what each stage is based on, which stages it copies from,
//! which stage `--target` names, and which stages a target needs (in build order).
//!
//! Rules (BuildKit's): `FROM name` refers to an *earlier* stage with that name,
//! otherwise it is an image reference (`scratch` is the empty image).
//! `COPY --from=x` refers to a stage by name or by index (0-based), otherwise to
//! an image. A stage that (transitively) copies from itself is a cycle.

use crate::args::MetaScope;
use crate::dockerfile::{ArgDecl, Dockerfile, Instruction};
use crate::expand::Lexer;
use crate::Error;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty filesystem and config.
    Scratch,
    /// An earlier stage (by index).
    Stage(usize),
    /// An image reference, expanded (e.g. `python:3.6-alpine`).
    Image(String),
}

/// Where a `COPY --from` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// Another stage's result.
    Stage(usize),
    /// An image's filesystem.
    Image(String),
}

/// One stage in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageNode {
    /// Index in the Dockerfile.
    pub index: usize,
    /// `AS` name.
    pub name: Option<String>,
    /// The base, after meta-arg expansion.
    pub base: Base,
    /// `--platform`, after expansion.
    pub platform: Option<String>,
    /// `COPY --from` of each instruction (same index as `Stage::instructions`;
    /// `None` for other instructions).
    pub copy_from: Vec<Option<CopySource>>,
}

impl StageNode {
    /// Stages this stage needs finished first (base and `COPY --from`), sorted.
    pub fn stage_deps(&self) -> Vec<usize> {
        let mut deps: Vec<usize> = self
            .copy_from
            .iter()
            .flatten()
            .filter_map(|c| match c {
                CopySource::Stage(i) => Some(*i),
                CopySource::Image(_) => None,
            })
            .chain(match self.base {
                Base::Stage(i) => Some(i),
                _ => None,
            })
            .collect();
        deps.sort_unstable();
        deps.dedup();
        deps
    }

    /// Images this stage needs (base image and `COPY --from=<image>`).
    pub fn images(&self) -> Vec<String> {
        let mut v: Vec<String> = match &self.base {
            Base::Image(r) => vec![r.clone()],
            _ => Vec::new(),
        };
        for c in self.copy_from.iter().flatten() {
            if let CopySource::Image(r) = c {
                if !v.contains(r) {
                    v.push(r.clone());
                }
            }
        }
        v
    }
}

/// All stages with their references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    /// One node per stage, by index.
    pub nodes: Vec<StageNode>,
}

impl StageGraph {
    /// Resolve every stage's base and `COPY --from` references. `FROM` lines are
    /// expanded with the meta args; `--from` values with the meta args plus the
    /// stage's own ARG declarations before that instruction.
    pub fn build(df: &Dockerfile, meta: &MetaScope) -> Result<StageGraph, Error> {
        let lx = Lexer::new(df.directives.escape);
        let mut nodes: Vec<StageNode> = Vec::new();
        for stage in &df.stages {
            let at = |e: crate::expand::ExpandError| {
                Error::Invalid(format!(
                    "dockerfile line {}: {}: {e}",
                    stage.line, stage.original
                ))
            };
            let base_name = lx.process_word(&stage.base, meta.vars()).map_err(at)?;
            if base_name.is_empty() {
                return Err(Error::Invalid(format!(
                    "dockerfile line {}: base name ({}) should not be blank",
                    stage.line, stage.base
                )));
            }
            let platform = match &stage.platform {
                Some(p) => Some(lx.process_word(p, meta.vars()).map_err(at)?),
                None => None,
            };
            let lower = base_name.to_ascii_lowercase();
            let base = if let Some(i) = nodes
                .iter()
                .position(|n| n.name.as_deref() == Some(lower.as_str()))
            {
                Base::Stage(i)
            } else if lower == "scratch" {
                Base::Scratch
            } else {
                Base::Image(base_name)
            };
            // Stage-local ARG scope, for `--from=$X`.
            let mut vars: Vec<(String, String)> = Vec::new();
            let mut copy_from = Vec::new();
            for located in &stage.instructions {
                match &located.instruction {
                    Instruction::Arg(decls) => {
                        for ArgDecl { name, default } in decls {
                            let v = match (meta.build_arg(name), default) {
                                (Some(b), _) => Some(b.to_string()),
                                (None, Some(d)) => {
                                    Some(lx.process_word(d, &vars).unwrap_or_default())
                                }
                                (None, None) => meta.inherited(name),
                            };
                            if let Some(v) = v {
                                vars.push((name.clone(), v));
                            }
                        }
                        copy_from.push(None);
                    }
                    Instruction::Copy(c) if c.from.is_some() => {
                        let raw = c.from.as_deref().unwrap_or_default();
                        let from = lx.process_word(raw, &vars).map_err(|e| {
                            Error::Invalid(format!(
                                "dockerfile line {}: --from={raw}: {e}",
                                located.line
                            ))
                        })?;
                        copy_from.push(Some(resolve_copy_from(df, &from, located.line)?));
                    }
                    _ => copy_from.push(None),
                }
            }
            nodes.push(StageNode {
                index: stage.index,
                name: stage.name.clone(),
                base,
                platform,
                copy_from,
            });
        }
        let graph = StageGraph { nodes };
        graph.check_cycles(df)?;
        Ok(graph)
    }

    /// The stage `--target` names (by name, case-insensitive); the last stage
    /// when no target is given.
    pub fn target(&self, target: Option<&str>) -> Result<usize, Error> {
        match target {
            None => Ok(self.nodes.len().saturating_sub(1)),
            Some(t) => {
                let t = t.to_ascii_lowercase();
                self.nodes
                    .iter()
                    .position(|n| n.name.as_deref() == Some(t.as_str()))
                    .ok_or_else(|| {
                        let names: Vec<&str> = self
                            .nodes
                            .iter()
                            .filter_map(|n| n.name.as_deref())
                            .collect();
                        Error::Invalid(format!(
                            "target stage {t:?} could not be found (stages: {})",
                            if names.is_empty() {
                                "none named".to_string()
                            } else {
                                names.join(", ")
                            }
                        ))
                    })
            }
        }
    }

    /// The stages needed to build `target`, dependencies first, each once.
    pub fn needed(&self, target: usize) -> Vec<usize> {
        let mut order = Vec::new();
        let mut seen = vec![false; self.nodes.len()];
        self.visit(target, &mut seen, &mut order);
        order
    }

    fn visit(&self, i: usize, seen: &mut [bool], order: &mut Vec<usize>) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        for d in self.nodes[i].stage_deps() {
            self.visit(d, seen, order);
        }
        order.push(i);
    }

    fn check_cycles(&self, df: &Dockerfile) -> Result<(), Error> {
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; self.nodes.len()];
        fn dfs(g: &StageGraph, i: usize, state: &mut [u8]) -> Option<usize> {
            state[i] = 1;
            for d in g.nodes[i].stage_deps() {
                match state[d] {
                    1 => return Some(d),
                    0 => {
                        if let Some(c) = dfs(g, d, state) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            state[i] = 2;
            None
        }
        for i in 0..self.nodes.len() {
            if state[i] == 0 {
                if let Some(c) = dfs(self, i, &mut state) {
                    let stage = &df.stages[c];
                    let name = stage.name.clone().unwrap_or_else(|| c.to_string());
                    return Err(Error::Invalid(format!(
                        "dockerfile line {}: circular dependency detected on stage: {name}",
                        stage.line
                    )));
                }
            }
        }
        Ok(())
    }
}

fn resolve_copy_from(df: &Dockerfile, from: &str, line: usize) -> Result<CopySource, Error> {
    if from.is_empty() {
        return Err(Error::Invalid(format!(
            "dockerfile line {line}: COPY --from must not be empty"
        )));
    }
    let lower = from.to_ascii_lowercase();
    if let Some(s) = df
        .stages
        .iter()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Ok(CopySource::Stage(s.index));
    }
    if from.chars().all(|c| c.is_ascii_digit()) {
        return match from.parse::<usize>() {
            Ok(i) if i < df.stages.len() => Ok(CopySource::Stage(i)),
            _ => Err(Error::Invalid(format!(
                "dockerfile line {line}: COPY --from={from}: there is no build stage {from} (stages are numbered 0 to {})",
                df.stages.len() - 1
            ))),
        };
    }
    Ok(CopySource::Image(from.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::BuildOptions;
    use crate::dockerfile::parse;

    fn graph(src: &str) -> Result<StageGraph, Error> {
        graph_with(src, &[])
    }

    fn graph_with(src: &str, args: &[(&str, &str)]) -> Result<StageGraph, Error> {
        let df = parse(src).unwrap();
        let opts = BuildOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let meta = MetaScope::new(&df, &opts).unwrap();
        StageGraph::build(&df, &meta)
    }

    #[test]
    fn copy_from_follows_build_args() {
        let src = "FROM a AS one\nFROM b AS two\nFROM c\nARG SRC=one\nCOPY --from=$SRC /x /x\n";
        assert_eq!(graph(src).unwrap().needed(2), vec![0, 2]);
        assert_eq!(
            graph_with(src, &[("SRC", "two")]).unwrap().needed(2),
            vec![1, 2]
        );
    }

    #[test]
    fn multi_stage_needed() {
        let g = graph(
            "ARG BASE=alpine\n\
             FROM $BASE AS deps\nRUN a\n\
             FROM golang AS build\nCOPY --from=deps /x /x\n\
             FROM build AS test\nRUN t\n\
             FROM scratch AS unused\n\
             FROM busybox\nARG SRC=build\nCOPY --from=$SRC /app /app\nCOPY --from=0 /y /y\nCOPY --from=nginx:alpine /etc/nginx /n\n",
        )
        .unwrap();
        assert_eq!(g.nodes[0].base, Base::Image("alpine".into()));
        assert_eq!(g.nodes[2].base, Base::Stage(1));
        assert_eq!(g.nodes[3].base, Base::Scratch);
        let last = g.target(None).unwrap();
        assert_eq!(last, 4);
        assert_eq!(g.needed(last), vec![0, 1, 4]);
        assert_eq!(
            g.nodes[4].images(),
            vec!["busybox".to_string(), "nginx:alpine".to_string()]
        );
        assert_eq!(g.needed(g.target(Some("TEST")).unwrap()), vec![0, 1, 2]);
        let e = g.target(Some("nope")).unwrap_err().to_string();
        assert!(
            e.starts_with("target stage \"nope\" could not be found"),
            "{e}"
        );
    }

    #[test]
    fn later_stage_name_in_from_is_an_image() {
        let g = graph("FROM later\nFROM alpine AS later\n").unwrap();
        assert_eq!(g.nodes[0].base, Base::Image("later".into()));
    }

    #[test]
    fn errors() {
        let e =
            graph("FROM a AS one\nCOPY --from=two /a /a\nFROM b AS two\nCOPY --from=one /b /b\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("circular dependency detected on stage"), "{e}");
        let e = graph("FROM a\nCOPY --from=0 /a /a\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("circular dependency detected on stage: 0"),
            "{e}"
        );
        let e = graph("FROM a\nCOPY --from=3 /a /a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("there is no build stage 3"), "{e}");
        let e = graph("ARG X\nFROM $X\n").unwrap_err().to_string();
        assert!(e.contains("base name ($X) should not be blank"), "{e}");
    }
}
