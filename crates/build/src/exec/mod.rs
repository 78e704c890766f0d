//! The executor: builds an image from a Dockerfile and a context into the
//! image store, driving the pure pipeline of this crate (see docs/build.md)
//! and docs/build-exec.md for how it runs.
//!
//! - [`build`]: the entry point ([`BuildRequest`] → [`Built`]).
//! - [`run_step`]: RUN in a container (mc_runtime) over the stage's layers.
//! - [`network`]: the build's bridge network RUN steps use by default.
//! - [`copy_step`]: COPY/ADD into a fresh layer directory.
//! - [`layer`]: a layer directory → a deterministic gzip tar (whiteouts
//!   converted); lookups in a stack of layers.
//! - [`cache`]: the per-step build cache under `<root>/build-cache/`.
//! - [`push`]: send a stored image to its registry.
//!
//! The process must be single-threaded when a RUN starts (mc_runtime forks
//! and clones): pulls go through `mc_image::ensure_blocking`, which returns
//! only after its threads are gone.

pub mod cache;
pub mod copy_step;
pub mod layer;
pub mod network;
pub mod push;
pub mod run_step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mc_image::commit::StoredLayer;
use mc_image::manifest::Descriptor;
use mc_image::Store;

use crate::args::BuildOptions;
use crate::cache_key;
use crate::config::ImageConfig;
use crate::context::{self, BuildContext, EntryKind};
use crate::dockerfile::{self, CopyKind, Instruction};
use crate::evaluate::StageState;
use crate::plan;
use crate::stages::{Base, CopySource};
use crate::Error;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// `--root`: the image store, containers of RUN steps, the build cache.
    pub root: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile (a host path).
    pub dockerfile: PathBuf,
    /// `--build-arg`, `--target`, platforms.
    pub options: BuildOptions,
    /// Tags to give the result (`name[:tag]`); none: the image is only stored.
    pub tags: Vec<String>,
    /// `--no-cache`: run every step (results still refresh the cache).
    pub no_cache: bool,
    /// How to pull base images.
    pub pull: mc_image::PullOptions,
    /// Extra labels on the result (compose `build.labels`).
    pub labels: BTreeMap<String, String>,
    /// Prefix of progress lines (compose: the service name).
    pub label: String,
    /// `--network`: the network of RUN steps without their own `--network=`.
    pub network: network::NetworkMode,
}

/// The built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// Image id ("sha256:<config digest>").
    pub id: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Normalised references it was tagged as.
    pub tags: Vec<String>,
    /// Steps run / taken from the cache.
    pub steps_run: usize,
    /// Steps whose result came from the cache.
    pub steps_cached: usize,
}

fn image_err(e: mc_image::Error) -> Error {
    match e {
        mc_image::Error::Invalid(m) => Error::Invalid(m),
        mc_image::Error::Other(e) => Error::Other(e),
    }
}

/// Removes temporary paths when the build ends, however it ends.
struct Scratch {
    paths: Vec<PathBuf>,
}

impl Scratch {
    fn add(&mut self, p: PathBuf) -> PathBuf {
        self.paths.push(p.clone());
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in self.paths.drain(..) {
            if p.is_dir() && !p.is_symlink() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// A finished stage.
struct StageOut {
    /// Unpacked layers, lowest first.
    layers: Vec<PathBuf>,
    /// Their blobs, same order.
    descriptors: Vec<Descriptor>,
    /// The full image config JSON.
    config_json: serde_json::Value,
    /// The stage's final cache key (its identity for children and `--from`).
    key: String,
    /// Flattened rootfs, made on first `COPY --from` of it.
    rootfs: Option<PathBuf>,
}

/// Progress lines on stderr, numbered like BuildKit's plain output.
struct Progress {
    label: String,
    n: usize,
}

impl Progress {
    fn start(&mut self, what: &str) -> (usize, Instant) {
        self.n += 1;
        if self.label.is_empty() {
            eprintln!("#{} {what}", self.n);
        } else {
            eprintln!("#{} [{}] {what}", self.n, self.label);
        }
        (self.n, Instant::now())
    }
    fn done(&self, (n, t): (usize, Instant)) {
        eprintln!("#{n} DONE {:.1}s", t.elapsed().as_secs_f64());
    }
    fn cached(&self, (n, _): (usize, Instant)) {
        eprintln!("#{n} CACHED");
    }
}

struct Builder<'a> {
    req: &'a BuildRequest,
    store: Store,
    cache: cache::Cache,
    rt: mc_runtime::Runtime,
    progress: Progress,
    scratch: Scratch,
    /// The bridge network of RUN steps (made at the first uncached one);
    /// removed when the builder is dropped, on success and on error.
    net: network::BuildNetwork,
    /// Flattened image rootfs for `COPY --from=<image>`, by reference.
    image_roots: BTreeMap<String, (PathBuf, String)>,
    steps_run: usize,
    steps_cached: usize,
}

/// Build `req` into the store and tag it. Errors name the step
/// (`Dockerfile:4: RUN …`); nothing is tagged unless every step succeeded,
/// and the cache only ever records steps that succeeded.
pub fn build(req: &BuildRequest) -> Result<Built, Error> {
    let tags: Vec<mc_image::Reference> = req
        .tags
        .iter()
        .map(|t| {
            mc_image::Reference::parse(t).map_err(|e| {
                Error::Invalid(format!(
                    "invalid tag {t:?}: {}",
                    match e {
                        mc_image::Error::Invalid(m) => m,
                        mc_image::Error::Other(e) => e.to_string(),
                    }
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let df = dockerfile::parse_file(&req.dockerfile)?;
    for w in &df.warnings {
        eprintln!(
            "WARNING: {}:{}: {}",
            req.dockerfile.display(),
            w.line,
            w.message
        );
    }
    let plan = plan::plan(&df, &req.options)?;
    for a in &plan.unused_build_args {
        eprintln!("WARNING: build argument {a} was given but not consumed by the Dockerfile");
    }
    let ctx = BuildContext::for_dockerfile(&req.context, &req.dockerfile)?;
    let store = Store::open(&req.root).map_err(image_err)?;
    let rt = mc_runtime::Runtime::open(&req.root);
    run_step::sweep_stale(&rt);
    let mut b = Builder {
        req,
        cache: cache::Cache::new(&req.root),
        rt,
        store,
        progress: Progress {
            label: req.label.clone(),
            n: 0,
        },
        scratch: Scratch { paths: Vec::new() },
        net: network::BuildNetwork::new(&req.root),
        image_roots: BTreeMap::new(),
        steps_run: 0,
        steps_cached: 0,
    };
    // A killed build's network (its containers were just swept). Only the
    // store is read unless one is found.
    b.net.sweep();
    let mut outs: BTreeMap<usize, StageOut> = BTreeMap::new();
    for &i in &plan.order {
        let is_target = i == plan.target;
        let out = b.stage(&df, &plan, i, &ctx, &mut outs, is_target)?;
        outs.insert(i, out);
    }
    let target = outs
        .remove(&plan.target)
        .ok_or_else(|| Error::Other(anyhow::anyhow!("internal: the target stage was not built")))?;
    let config = serde_json::to_vec(&target.config_json).map_err(|e| Error::Other(e.into()))?;
    let t = b.progress.start("exporting to image");
    let committed =
        mc_image::commit::commit(&b.store, &config, &target.descriptors).map_err(image_err)?;
    eprintln!("#{} writing image {}", t.0, committed.id);
    let mut names = Vec::new();
    for r in &tags {
        mc_image::commit::tag(&b.store, &committed, r).map_err(image_err)?;
        eprintln!("#{} naming to {r}", t.0);
        names.push(r.to_string());
    }
    b.progress.done(t);
    Ok(Built {
        id: committed.id,
        manifest_digest: committed.manifest_digest,
        tags: names,
        steps_run: b.steps_run,
        steps_cached: b.steps_cached,
    })
}

/// `<Dockerfile>:<line>: <instruction>` for messages.
fn at(req: &BuildRequest, line: usize, original: &str) -> String {
    let name = req
        .dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    format!("{name}:{line}: {}", original.trim())
}

fn with_step(e: Error, step: &str) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{step}: {m}")),
        Error::Other(e) => Error::Other(e.context(step.to_string())),
    }
}

impl Builder<'_> {
    fn platform(&self) -> String {
        self.req.options.target_platform.to_string()
    }

    /// Pull (or find) an image; its layers, blobs and raw config.
    fn image(
        &mut self,
        reference: &str,
    ) -> Result<(mc_image::LocalImage, Vec<Descriptor>, serde_json::Value), Error> {
        let img =
            mc_image::ensure_blocking(&self.store, reference, &self.req.pull).map_err(image_err)?;
        let descs = mc_image::commit::layer_descriptors(&self.store, &img.manifest_digest)
            .map_err(image_err)?;
        let (_, raw) = self
            .store
            .read_image(&img.manifest_digest)
            .map_err(Error::Other)?;
        let json: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| Error::Other(e.into()))?;
        Ok((img, descs, json))
    }

    fn stage(
        &mut self,
        df: &dockerfile::Dockerfile,
        plan: &plan::BuildPlan,
        i: usize,
        ctx: &BuildContext,
        outs: &mut BTreeMap<usize, StageOut>,
        is_target: bool,
    ) -> Result<StageOut, Error> {
        let node = &plan.graph.nodes[i];
        let stage = &df.stages[i];
        // Numbered like BuildKit: FROM and the steps that are operations.
        let is_op = |i: &Instruction| {
            matches!(
                i,
                Instruction::Run(_) | Instruction::Copy(_) | Instruction::Workdir(_)
            )
        };
        let total = 1 + stage
            .instructions
            .iter()
            .filter(|l| is_op(&l.instruction))
            .count();
        let mut number = 1;
        let name = node.name.clone().unwrap_or_else(|| format!("stage-{i}"));
        let tag = |k: usize| {
            if plan.order.len() > 1 {
                format!("[{name} {k}/{total}]")
            } else {
                format!("[{k}/{total}]")
            }
        };
        let from_line = at(self.req, stage.line, &stage.original);
        // BuildKit shows the resolved base: `FROM docker.io/library/busybox:latest`.
        let from_what = match &node.base {
            Base::Scratch => "scratch".to_string(),
            Base::Stage(j) => plan.graph.nodes[*j]
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{j}")),
            Base::Image(r) => mc_image::Reference::parse(r)
                .map(|p| p.to_string())
                .unwrap_or_else(|_| r.clone()),
        };
        let t = self.progress.start(&format!("{} FROM {from_what}", tag(1)));
        let (mut layers, mut descriptors, base_json, mut key) = match &node.base {
            Base::Scratch => (
                Vec::new(),
                Vec::new(),
                None,
                cache_key::base_key("scratch", &self.platform()),
            ),
            Base::Stage(j) => {
                let o = outs.get(j).ok_or_else(|| {
                    Error::Other(anyhow::anyhow!("internal: stage {j} not built before {i}"))
                })?;
                (
                    o.layers.clone(),
                    o.descriptors.clone(),
                    Some(o.config_json.clone()),
                    cache_key::base_key(&o.key, &self.platform()),
                )
            }
            Base::Image(r) => {
                let (img, descs, json) = self.image(r).map_err(|e| with_step(e, &from_line))?;
                let k = cache_key::base_key(&img.id, &self.platform());
                (img.layers, descs, Some(json), k)
            }
        };
        self.progress.done(t);
        let base_config: ImageConfig = match &base_json {
            Some(j) => serde_json::from_value(j["config"].clone()).unwrap_or_default(),
            None => ImageConfig::default(),
        };
        let base_oci: Option<oci_spec::image::ImageConfiguration> = match &base_json {
            Some(j) => Some(serde_json::from_value(j.clone()).map_err(|e| {
                Error::Other(anyhow::anyhow!(
                    "{from_line}: read the base image config: {e}"
                ))
            })?),
            None => None,
        };
        let mut st = StageState::new(
            base_config,
            &plan.meta,
            &self.req.options,
            df.directives.escape,
        );
        let mut new_diff_ids: Vec<String> = Vec::new();
        let mut newest: Option<String> = None;
        for (k, located) in stage.instructions.iter().enumerate() {
            let where_ = at(self.req, located.line, &located.original);
            let step = st.step(located).map_err(|e| with_step(e, &where_))?;
            if is_op(&step.instruction) {
                number += 1;
            }
            let label = format!("{} {}", tag(number), located.original.trim());
            let produced: Option<cache::Entry> = match &step.instruction {
                Instruction::Run(_) => {
                    let run = step.run.clone().ok_or_else(|| {
                        Error::Other(anyhow::anyhow!("internal: RUN without a run spec"))
                    })?;
                    let mode =
                        network::NetworkMode::for_run(run.network.as_deref(), self.req.network)
                            .map_err(|e| with_step(e, &where_))?;
                    key = cache_key::step_key(
                        &key,
                        &keyed_network(&step, mode),
                        &st.config,
                        None,
                        None,
                    );
                    let t = self.progress.start(&label);
                    Some(match self.cached(&key) {
                        Some(e) => {
                            self.progress.cached(t);
                            e
                        }
                        None => {
                            let e = self
                                .run(&layers, &run, mode, &label)
                                .map_err(|e| with_step(e, &where_))?;
                            self.remember(&key, &e)?;
                            self.progress.done(t);
                            e
                        }
                    })
                }
                Instruction::Copy(c) => {
                    let from = &node.copy_from[k];
                    let (src_ctx, from_key) = match from {
                        None => (ctx.clone(), None),
                        Some(CopySource::Stage(j)) => {
                            let o = outs.get_mut(j).ok_or_else(|| {
                                Error::Other(anyhow::anyhow!("internal: stage {j} not built"))
                            })?;
                            let root = self.stage_rootfs(o)?;
                            (
                                BuildContext::rootfs(&root, &format!("stage {j}"))?,
                                Some(o.key.clone()),
                            )
                        }
                        Some(CopySource::Image(r)) => {
                            let (root, id) =
                                self.image_rootfs(r).map_err(|e| with_step(e, &where_))?;
                            (
                                BuildContext::rootfs(&root, &format!("image {r}"))?,
                                Some(id),
                            )
                        }
                    };
                    let lower = layer::LayerStack::new(&layers);
                    let planned = self
                        .plan_copy(c, &step, &src_ctx, &lower, from.is_none())
                        .map_err(|e| with_step(e, &where_))?;
                    key = cache_key::step_key(
                        &key,
                        &step,
                        &st.config,
                        Some(&planned.content),
                        from_key.as_deref(),
                    );
                    let t = self.progress.start(&label);
                    Some(match self.cached(&key) {
                        Some(e) => {
                            self.progress.cached(t);
                            e
                        }
                        None => {
                            let e = self
                                .copy(c, &planned, &lower)
                                .map_err(|e| with_step(e, &where_))?;
                            self.remember(&key, &e)?;
                            self.progress.done(t);
                            e
                        }
                    })
                }
                other => {
                    key = cache_key::step_key(&key, &step, &st.config, None, None);
                    if matches!(other, Instruction::Workdir(_)) {
                        // The directory is made by the next RUN/COPY (or at container start).
                        let t = self.progress.start(&label);
                        self.progress.done(t);
                    }
                    None
                }
            };
            if let Some(e) = produced {
                newest = Some(e.created.clone());
                match e.layer {
                    Some(l) => {
                        layers.push(self.store.layer_path(&l.diff_id));
                        descriptors.push(l.descriptor);
                        new_diff_ids.push(l.diff_id);
                    }
                    None => {
                        // An empty diff makes no layer (BuildKit's behaviour).
                        if let Some(h) = st.history.last_mut() {
                            h.empty_layer = true;
                        }
                    }
                }
            }
        }
        if is_target {
            st.config
                .labels
                .extend(self.req.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        // Same steps, same results → the same `created` → the same image id.
        let created = newest.unwrap_or_else(|| {
            base_json
                .as_ref()
                .and_then(|j| j["created"].as_str().map(str::to_string))
                .unwrap_or_else(mc_image::import::rfc3339_now)
        });
        let config_json = crate::config::image_config_json(
            base_oci.as_ref(),
            &st.config,
            &st.history,
            &new_diff_ids,
            &created,
            &self.req.options.target_platform,
        )?;
        Ok(StageOut {
            layers,
            descriptors,
            config_json,
            key,
            rootfs: None,
        })
    }

    fn cached(&mut self, key: &str) -> Option<cache::Entry> {
        if self.req.no_cache {
            return None;
        }
        let e = self.cache.get(key, &self.store);
        if let Some(hit) = &e {
            self.steps_cached += 1;
            tracing::info!(
                target: "explain::build",
                "cache hit {key}: layer {}",
                hit.layer.as_ref().map_or("(none: empty diff)", |l| l.diff_id.as_str())
            );
        }
        e
    }

    fn remember(&mut self, key: &str, e: &cache::Entry) -> Result<(), Error> {
        self.steps_run += 1;
        tracing::info!(
            target: "explain::build",
            "cache entry {key} -> {}",
            self.req.root.join("build-cache").display()
        );
        self.cache.put(key, e).map_err(Error::Other)
    }

    /// A stage's filesystem as one directory (for `COPY --from`).
    fn stage_rootfs(&mut self, o: &mut StageOut) -> Result<PathBuf, Error> {
        if let Some(r) = &o.rootfs {
            return Ok(r.clone());
        }
        let dir = self.scratch.add(self.store.tmp_path("stage-rootfs"));
        flatten(&o.layers, &dir)?;
        o.rootfs = Some(dir.clone());
        Ok(dir)
    }

    fn image_rootfs(&mut self, reference: &str) -> Result<(PathBuf, String), Error> {
        if let Some(v) = self.image_roots.get(reference) {
            return Ok(v.clone());
        }
        let (img, _, _) = self.image(reference)?;
        let dir = self.scratch.add(self.store.tmp_path("from-rootfs"));
        flatten(&img.layers, &dir)?;
        self.image_roots
            .insert(reference.to_string(), (dir.clone(), img.id.clone()));
        Ok((dir, img.id))
    }

    /// Turn a finished step's directory into a stored layer (or `None` when empty).
    fn store_dir(&mut self, dir: &Path, skip: &[String]) -> Result<Option<StoredLayer>, Error> {
        if layer::is_empty_dir(dir, skip).map_err(|e| Error::Other(e.into()))? {
            return Ok(None);
        }
        let tmp = self.scratch.add(self.store.tmp_path("layer.tar.gz"));
        tracing::info!(target: "explain::build", "layer tar of {} -> {}", dir.display(), tmp.display());
        let f = std::fs::File::create(&tmp).map_err(|e| Error::Other(e.into()))?;
        let mut w = std::io::BufWriter::new(f);
        layer::write_layer(dir, &mut w, skip).map_err(Error::Other)?;
        std::io::Write::flush(&mut w).map_err(|e| Error::Other(e.into()))?;
        drop(w);
        let f = std::fs::File::open(&tmp).map_err(|e| Error::Other(e.into()))?;
        let stored = mc_image::commit::store_layer(&self.store, f).map_err(image_err)?;
        let _ = std::fs::remove_file(&tmp);
        Ok(Some(stored))
    }

    fn run(
        &mut self,
        layers: &[PathBuf],
        run: &crate::evaluate::RunSpec,
        mode: network::NetworkMode,
        label: &str,
    ) -> Result<cache::Entry, Error> {
        let script_dir = self.store.tmp_dir();
        let step_net = match mode {
            network::NetworkMode::Host => run_step::StepNetwork::Host,
            network::NetworkMode::None => run_step::StepNetwork::None,
            network::NetworkMode::Default => {
                let net = self.net.ensure()?;
                run_step::StepNetwork::Bridge {
                    nets: self.net.networks()?,
                    network: net.name,
                }
            }
        };
        let out = run_step::run(&self.rt, layers, run, &script_dir, step_net)?;
        let out = match out {
            Ok(o) => o,
            Err(failed) => {
                eprintln!("------");
                eprintln!(" > {label}:");
                for l in &failed.tail {
                    eprintln!("{l}");
                }
                eprintln!("------");
                let last = failed.tail.last().map(|l| l.trim()).unwrap_or("");
                let argv = crate::config::run_command_string(&run.argv, &[]);
                return Err(Error::Invalid(format!(
                    "process \"{argv}\" did not complete successfully: exit code: {}{}",
                    failed.code,
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(" (last output: {last})")
                    }
                )));
            }
        };
        // Mount points the runtime made in the upper dir are not the step's work.
        let lower = layer::LayerStack::new(layers);
        let mut skip: Vec<String> = layer::MOUNT_STUBS
            .iter()
            .filter(|p| lower.find(p).is_none() && is_stub(&out.upper.join(p)))
            .map(|p| p.to_string())
            .collect();
        // /etc copied up only to hold those stubs is not a change either.
        if let (Ok(rd), Some(low)) = (std::fs::read_dir(out.upper.join("etc")), lower.find("etc")) {
            let only_stubs = rd
                .flatten()
                .all(|e| skip.contains(&format!("etc/{}", e.file_name().to_string_lossy())));
            let up = std::fs::symlink_metadata(out.upper.join("etc"));
            let same = up.is_ok_and(|u| {
                use std::os::unix::fs::MetadataExt;
                u.is_dir()
                    && low.meta.is_dir()
                    && u.mode() == low.meta.mode()
                    && u.uid() == low.meta.uid()
                    && u.gid() == low.meta.gid()
            });
            if only_stubs && same {
                skip.push("etc".into());
            }
        }
        let stored = self.store_dir(&out.upper.clone(), &skip);
        out.remove(&self.rt);
        Ok(cache::Entry {
            layer: stored?,
            created: mc_image::import::rfc3339_now(),
        })
    }

    fn plan_copy(
        &self,
        c: &dockerfile::Copy,
        step: &crate::evaluate::Step,
        src: &BuildContext,
        lower: &layer::LayerStack<'_>,
        from_context: bool,
    ) -> Result<PlannedCopy, Error> {
        let mut dest = step
            .copy_dest
            .clone()
            .ok_or_else(|| Error::Other(anyhow::anyhow!("internal: COPY without destination")))?;
        // Follow the image's symlinks in the destination, as Docker does.
        let trailing = dest.ends_with('/');
        let resolved = lower.resolve(&dest, trailing);
        if resolved != dest.trim_end_matches('/') && !(resolved == "/" && dest == "/") {
            dest = if trailing && resolved != "/" {
                format!("{resolved}/")
            } else {
                resolved
            };
        }
        let selected = if c.sources.is_empty() {
            Vec::new()
        } else {
            src.select(&c.sources)?
        };
        let owner = match &c.chown {
            Some(spec) => Some(crate::chown::resolve_chown(
                spec,
                lower.read_to_string("etc/passwd").as_deref(),
                lower.read_to_string("etc/group").as_deref(),
            )?),
            None => None,
        };
        let chmod = c.chmod.as_deref().map(context::parse_chmod).transpose()?;
        // A single file onto an existing directory goes inside it (Docker).
        if !dest.ends_with('/')
            && selected.len() == 1
            && c.inline.is_empty()
            && selected[0].root.kind != EntryKind::Dir
            && lower
                .find(dest.trim_start_matches('/'))
                .is_some_and(|f| f.meta.is_dir())
        {
            dest.push('/');
        }
        let n = c.sources.len() + c.inline.len();
        let items = context::plan_copy(&selected, n, &dest, owner, chmod)?;
        let mut inline = Vec::new();
        for s in &c.inline {
            inline.push((s.clone(), context::inline_destination(&dest, &s.name, n)?));
        }
        let content = cache_key::content_digest(&items, &c.inline)?;
        // ADD unpacks local archives named directly (not found inside a directory).
        let mut archives = Vec::new();
        if c.kind == CopyKind::Add && from_context {
            for s in &selected {
                if s.root.kind == EntryKind::File {
                    if let Some(kind) = context::archive_kind(&s.root.host_path)? {
                        archives.push(copy_step::ArchiveItem {
                            host_path: s.root.host_path.clone(),
                            kind,
                            dest_dir: dest.trim_end_matches('/').to_string(),
                        });
                    }
                }
            }
        }
        Ok(PlannedCopy {
            items,
            inline,
            archives,
            owner,
            chmod,
            content,
        })
    }

    fn copy(
        &mut self,
        _c: &dockerfile::Copy,
        p: &PlannedCopy,
        lower: &layer::LayerStack<'_>,
    ) -> Result<cache::Entry, Error> {
        let staging = self.scratch.add(self.store.tmp_path("copy"));
        tracing::info!(target: "explain::build", "COPY into the layer directory {}", staging.display());
        std::fs::create_dir_all(&staging).map_err(|e| Error::Other(e.into()))?;
        let archive_paths: Vec<&Path> = p.archives.iter().map(|a| a.host_path.as_path()).collect();
        let items: Vec<context::CopyItem> = p
            .items
            .iter()
            .filter(|i| !archive_paths.contains(&i.entry.host_path.as_path()))
            .cloned()
            .collect();
        let work = copy_step::CopyWork {
            items: &items,
            inline: p
                .inline
                .iter()
                .map(|(s, d)| copy_step::InlineItem {
                    source: s,
                    dest: d.clone(),
                })
                .collect(),
            archives: p
                .archives
                .iter()
                .map(|a| copy_step::ArchiveItem {
                    host_path: a.host_path.clone(),
                    kind: a.kind,
                    dest_dir: a.dest_dir.clone(),
                })
                .collect(),
            owner: p.owner,
            chmod: p.chmod,
        };
        copy_step::write(&staging, lower, &work)?;
        let stored = self.store_dir(&staging, &[]);
        let _ = std::fs::remove_dir_all(&staging);
        Ok(cache::Entry {
            layer: stored?,
            created: mc_image::import::rfc3339_now(),
        })
    }
}

struct PlannedCopy {
    items: Vec<context::CopyItem>,
    inline: Vec<(dockerfile::InlineSource, String)>,
    archives: Vec<copy_step::ArchiveItem>,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    content: String,
}

/// The step as its cache key sees it: the RUN's effective network mode in
/// the instruction's `network` field, as BuildKit's ExecOp carries it
/// (nothing for the default; `host`/`none` from the flag or `--network`).
fn keyed_network(
    step: &crate::evaluate::Step,
    mode: network::NetworkMode,
) -> crate::evaluate::Step {
    let mut s = step.clone();
    if let Instruction::Run(r) = &mut s.instruction {
        r.network = mode.cache_word().map(str::to_string);
    }
    s
}

/// An empty file or directory (a mount point the runtime created).
fn is_stub(p: &Path) -> bool {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => m.len() == 0,
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false),
        _ => false,
    }
}

/// Flatten layers into `dest` (whiteouts applied), via mc_image's export.
fn flatten(layers: &[PathBuf], dest: &Path) -> Result<(), Error> {
    let img = mc_image::LocalImage {
        id: String::new(),
        reference: String::new(),
        manifest_digest: String::new(),
        config: oci_spec::image::ImageConfiguration::default(),
        layers: layers.to_vec(),
    };
    mc_image::export::export(&img, dest).map_err(image_err)?;
    Ok(())
}
