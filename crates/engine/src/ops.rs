//! The compose operations on top of the runtime, the image store and the
//! networks: up, down, stop, start, restart, kill, rm, run. The caller must
//! have no other threads (the runtime forks without exec).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mc_compose::{Project, Service};
use mc_runtime::{EtcFiles, Record};

use crate::convert::{self, Built, Input};
use crate::naming::{
    self, LABEL_HASH, LABEL_IMAGE, LABEL_NUMBER, LABEL_ONEOFF, LABEL_PROJECT, LABEL_SERVICE,
};
use crate::netattach::Hook;
use crate::plan::{self, Action, Existing, RecreatePolicy};
use crate::state::{write_json, ContainerRecord, ProjectRecord};
use crate::{hash, volumes, Engine, Error, Reporter};

/// A container of a project, as found on the host.
#[derive(Debug, Clone)]
pub struct Member {
    pub rec: Record,
    pub service: String,
    pub number: u32,
    pub oneoff: bool,
    /// The state with a dead process accounted for.
    pub state: mc_runtime::State,
}

impl Member {
    pub fn id(&self) -> &str {
        &self.rec.spec.id
    }
    pub fn name(&self) -> &str {
        &self.rec.spec.name
    }
    pub fn running(&self) -> bool {
        self.state.status == mc_runtime::Status::Running
    }
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub services: Vec<String>,
    pub no_deps: bool,
    pub recreate: RecreatePolicy,
    pub scale: HashMap<String, u32>,
    pub remove_orphans: bool,
    pub timeout: Option<u64>,
    /// Do not start (`create`).
    pub no_start: bool,
}

/// `run`: a one-off container.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub service: String,
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub publish: Vec<mc_compose::Port>,
    pub service_ports: bool,
    pub no_deps: bool,
    pub remove: bool,
    pub name: Option<String>,
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

impl Engine {
    /// Every container of a project (one-offs included), oldest first.
    pub fn members(&self, project: &str) -> Vec<Member> {
        self.runtime
            .containers
            .list()
            .into_iter()
            .filter(|r| r.spec.labels.get(LABEL_PROJECT).map(String::as_str) == Some(project))
            .map(|rec| {
                let l = &rec.spec.labels;
                Member {
                    service: l.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                    number: l
                        .get(LABEL_NUMBER)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    oneoff: l.get(LABEL_ONEOFF).map(String::as_str) == Some("True"),
                    state: rec.live_state(),
                    rec,
                }
            })
            .collect()
    }

    /// Projects with containers on this root (name → members).
    pub fn projects(&self) -> BTreeMap<String, Vec<Member>> {
        let mut out: BTreeMap<String, Vec<Member>> = BTreeMap::new();
        for name in self
            .runtime
            .containers
            .list()
            .iter()
            .filter_map(|r| r.spec.labels.get(LABEL_PROJECT).cloned())
            .chain(self.paths.project_names())
        {
            if let std::collections::btree_map::Entry::Vacant(e) = out.entry(name) {
                let m = self.members(e.key());
                e.insert(m);
            }
        }
        out
    }

    /// The image of a service, pulled if missing.
    pub fn ensure_image(
        &self,
        svc: &str,
        s: &Service,
        rep: &mut dyn Reporter,
    ) -> Result<(String, mc_image::LocalImage), Error> {
        let Some(image) = s.image.clone() else {
            return Err(Error::Invalid(format!(
                "service {svc} has no image: building (`build:`) is not supported by up yet; set `image:`"
            )));
        };
        let store = mc_image::Store::open(&self.paths.root)?;
        if let Some(img) = store.get(&image)? {
            if s.pull_policy.as_deref() != Some("always") {
                return Ok((image, img));
            }
        } else if s.pull_policy.as_deref() == Some("never") {
            return Err(Error::Invalid(format!(
                "service {svc}: image {image} is not present and pull_policy is never"
            )));
        }
        rep.status("Image", &image, "Pulling");
        let img = mc_image::pull_blocking(&store, &image, &self.pull)?;
        rep.status("Image", &image, "Pulled");
        Ok((image, img))
    }

    /// `pull`: every (selected) service's image. As docker compose: a service
    /// that builds and names no image is skipped; one that names an image
    /// is pulled, and a failed pull only warns (it can be built), unless
    /// `ignore_buildable` skips it.
    pub fn pull_images(
        &self,
        project: &Project,
        services: &[String],
        ignore_buildable: bool,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let store = mc_image::Store::open(&self.paths.root)?;
        for (name, s) in &project.services {
            if !services.is_empty() && !services.contains(name) {
                continue;
            }
            let buildable = s.build.is_some();
            let Some(image) = s
                .image
                .as_ref()
                .filter(|_| !(buildable && ignore_buildable))
            else {
                if buildable {
                    rep.status("Image", name, "Skipped - No image to be pulled");
                } else {
                    rep.warn(&format!("service {name} has no image to pull"));
                }
                continue;
            };
            rep.status("Image", image, "Pulling");
            match mc_image::pull_blocking(&store, image, &self.pull) {
                Ok(_) => rep.status("Image", image, "Pulled"),
                Err(e) if buildable => rep.warn(&format!(
                    "pulling {image} for service {name} failed ({e}); it will be built"
                )),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Create the project's networks used by `services` (external ones must exist).
    /// Everything `services` need that compose does not create (external
    /// networks and volumes) exists, and every volume they name is declared:
    /// checked before anything is created, so a miss leaves nothing behind.
    pub fn check_externals(&self, project: &Project, services: &[String]) -> Result<(), Error> {
        let nets = self.net.networks()?;
        for key in used_networks(project, services) {
            let Some(decl) = project.networks.get(key) else {
                continue;
            };
            if decl.external && nets.store().load_network(&decl.name)?.is_none() {
                return Err(Error::Invalid(format!(
                    "network {} declared as external, but could not be found: create it with `minicompose network create {}`",
                    decl.name, decl.name
                )));
            }
        }
        for (s, source) in used_volumes(project, services) {
            let Some(decl) = project.volumes.get(source) else {
                return Err(Error::Invalid(format!(
                    "service {s} refers to undefined volume {source}: declare it under the top-level volumes"
                )));
            };
            if decl.external && !volumes::exists(&self.paths, &decl.name) {
                return Err(Error::Invalid(format!(
                    "volume {} declared as external, but could not be found: create it with `minicompose volume create {}`",
                    decl.name, decl.name
                )));
            }
        }
        Ok(())
    }

    pub fn ensure_networks(
        &self,
        project: &Project,
        services: &[String],
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        self.check_externals(project, services)?;
        let nets = self.net.networks()?;
        for key in used_networks(project, services) {
            let Some(decl) = project.networks.get(key) else {
                continue;
            };
            // External ones were checked by check_externals.
            if decl.external || nets.store().load_network(&decl.name)?.is_some() {
                continue;
            }
            if let Some(d) = decl.driver.as_deref() {
                if d != "bridge" {
                    return Err(Error::Invalid(format!(
                        "network {key}: driver {d} is not supported (only bridge)"
                    )));
                }
            }
            let subnet = decl
                .ipam
                .as_ref()
                .and_then(|i| i.get("config"))
                .and_then(|c| c.as_array())
                .and_then(|a| a.first())
                .and_then(|c| c.get("subnet"))
                .and_then(|s| s.as_str())
                .map(|s| {
                    s.parse().map_err(|_| {
                        Error::Invalid(format!("network {key}: subnet {s:?} is not an IPv4 CIDR"))
                    })
                })
                .transpose()?;
            let labels =
                naming::resource_labels(&decl.labels, &project.name, naming::LABEL_NETWORK, key);
            rep.status("Network", &decl.name, "Creating");
            nets.create(&mc_net::CreateRequest {
                name: decl.name.clone(),
                subnet,
                internal: decl.internal,
                labels,
            })?;
            rep.status("Network", &decl.name, "Created");
        }
        Ok(())
    }

    /// Create the named volumes used by `services`.
    pub fn ensure_volumes(
        &self,
        project: &Project,
        services: &[String],
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        for (_, source) in used_volumes(project, services) {
            // check_externals ran first: declared, and external ones exist.
            let Some(decl) = project.volumes.get(source) else {
                continue;
            };
            if decl.external || volumes::exists(&self.paths, &decl.name) {
                continue;
            }
            let labels =
                naming::resource_labels(&decl.labels, &project.name, naming::LABEL_VOLUME, source);
            rep.status("Volume", &decl.name, "Creating");
            volumes::ensure(&self.paths, &decl.name, labels)?;
            rep.status("Volume", &decl.name, "Created");
        }
        Ok(())
    }

    fn write_project(&self, project: &Project) -> Result<(), Error> {
        let rec = ProjectRecord {
            name: project.name.clone(),
            working_dir: project.working_dir.to_string_lossy().into_owned(),
            config_files: project
                .files
                .iter()
                .map(|f| f.to_string_lossy().into_owned())
                .collect(),
        };
        write_json(
            &self.paths.project_dir(&project.name).join("project.json"),
            &rec,
        )
    }

    /// Create one container (not started): spec, volumes, record.
    #[allow(clippy::too_many_arguments)]
    pub fn create_container(
        &self,
        project: &Project,
        svc: &str,
        s: &Service,
        image_ref: &str,
        image: &mc_image::LocalImage,
        number: u32,
        oneoff: bool,
        publish: bool,
        auto_remove: bool,
        name: Option<String>,
        reuse_anon: BTreeMap<String, String>,
    ) -> Result<(Record, ContainerRecord), Error> {
        let id = mc_runtime::state::new_id();
        let name = match (name, &s.container_name, oneoff) {
            (Some(n), _, _) => n,
            (None, Some(n), false) => n.clone(),
            (None, _, true) => naming::oneoff_name(&project.name, svc, &id),
            (None, None, false) => naming::container_name(&project.name, svc, number),
        };
        mc_runtime::state::validate_name(&name)?;
        let reused: Vec<String> = reuse_anon.values().cloned().collect();
        let Built { spec, record, fill } = convert::build(
            &self.paths,
            &Input {
                project,
                service_name: svc,
                service: s,
                image,
                image_ref,
                id: id.clone(),
                name,
                number,
                oneoff,
                hash: hash::service_hash(s),
                publish,
                auto_remove,
                reuse_anon,
            },
        )?;
        for anon in &record.anon_volumes {
            let mut labels = BTreeMap::new();
            labels.insert(LABEL_PROJECT.to_string(), project.name.clone());
            labels.insert(volumes::LABEL_ANONYMOUS.to_string(), String::new());
            volumes::ensure(&self.paths, anon, labels)?;
        }
        for (vol, target) in &fill {
            volumes::populate(&self.paths, vol, &image.layers, target)?;
        }
        let net = if spec.network == "host" {
            "host"
        } else {
            "none"
        };
        let files = EtcFiles::defaults(&spec.hostname, net);
        self.paths.write_record(&record)?;
        match self.runtime.create(&spec, &files) {
            Ok(rec) => Ok((rec, record)),
            Err(e) => {
                self.paths.remove_record(&project.name, &id);
                for anon in record.anon_volumes.iter().filter(|a| !reused.contains(a)) {
                    let _ = volumes::remove(&self.paths, anon);
                }
                Err(e.into())
            }
        }
    }

    /// Start a created or exited container under its own monitor.
    pub fn start_container(&self, project: &str, id: &str) -> Result<Vec<String>, Error> {
        let mut rec = self.runtime.containers.read(id)?;
        if rec.state.is_running() {
            return Ok(Vec::new());
        }
        // The previous run's monitor records the exit first, then frees the
        // cgroup and the network: starting before it is done would lose both.
        let deadline = Instant::now() + Duration::from_secs(10);
        while rec.state.monitor_pid > 0
            && mc_runtime::state::proc_start_time(rec.state.monitor_pid).is_some()
            && Instant::now() < deadline
        {
            sleep_ms(10);
            rec = self.runtime.containers.read(id)?;
        }
        let mut ours = self.paths.read_record(project, id).ok_or_else(|| {
            Error::Other(anyhow::anyhow!(
                "container {} has no compose record: remove it with `down`",
                rec.spec.name
            ))
        })?;
        if ours.stopped_by_user {
            // A user's start: the restart policy counts from zero again.
            ours.stopped_by_user = false;
            self.paths.write_record(&ours)?;
            self.paths.set_restart_count(project, id, 0);
        }
        let mut hook = Hook {
            ctx: &self.net,
            rec: &ours,
            hostname: rec.spec.hostname.clone(),
            dir: rec.dir.clone(),
        };
        let ctx = self.net.clone();
        let mut teardown = move |cid: &str| ctx.detach(cid);
        Ok(self
            .runtime
            .run_detached(&rec, false, &mut hook, &mut teardown)?)
    }

    /// Stop (signal, grace, SIGKILL) and mark as stopped by the user.
    pub fn stop_container(
        &self,
        project: &str,
        id: &str,
        timeout: Option<u64>,
    ) -> Result<(), Error> {
        self.paths.set_stopped_by_user(project, id, true);
        self.runtime.stop(id, timeout)?;
        Ok(())
    }

    /// A container's anonymous volumes by mount target (to hand them to
    /// the container that replaces it).
    fn anon_volumes_by_target(&self, project: &str, id: &str) -> BTreeMap<String, String> {
        let (Some(ours), Ok(rec)) = (
            self.paths.read_record(project, id),
            self.runtime.containers.read(id),
        ) else {
            return BTreeMap::new();
        };
        rec.spec
            .mounts
            .iter()
            .filter_map(|m| {
                let name = ours
                    .anon_volumes
                    .iter()
                    .find(|v| m.source == volumes::data_dir(&self.paths, v))?;
                Some((
                    m.destination.trim_end_matches('/').to_string(),
                    name.clone(),
                ))
            })
            .collect()
    }

    /// Remove a container (killing it if running), its record and, with
    /// `volumes`, its anonymous volumes.
    pub fn remove_container(&self, project: &str, id: &str, volumes: bool) -> Result<(), Error> {
        self.paths.set_stopped_by_user(project, id, true);
        let ours = self.paths.read_record(project, id);
        let ctx = self.net.clone();
        let mut teardown = move |cid: &str| ctx.detach(cid);
        match self.runtime.remove(id, true, &mut teardown) {
            Ok(_) => {}
            Err(mc_runtime::Error::Invalid(m)) if m.starts_with("No such container") => {}
            Err(e) => return Err(e.into()),
        }
        self.paths.remove_record(project, id);
        self.paths.set_restart_count(project, id, 0);
        if volumes {
            for v in ours.map(|o| o.anon_volumes).unwrap_or_default() {
                volumes::remove(&self.paths, &v)?;
            }
        }
        Ok(())
    }

    /// Wait until `depends_on` of `svc` holds (docker's conditions and messages).
    pub fn wait_dependencies(
        &self,
        project: &Project,
        svc: &str,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let s = &project.services[svc];
        for (dep, d) in &s.depends_on {
            if !project.services.contains_key(dep) {
                continue;
            }
            let r = self.wait_condition(&project.name, dep, &d.condition, rep);
            if let Err(e) = r {
                if d.required {
                    return Err(e);
                }
                rep.warn(&format!("optional dependency {dep} of {svc} failed: {e}"));
            }
        }
        Ok(())
    }

    fn wait_condition(
        &self,
        project: &str,
        dep: &str,
        condition: &str,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let members: Vec<Member> = self
            .members(project)
            .into_iter()
            .filter(|m| m.service == dep && !m.oneoff)
            .collect();
        for m in members {
            let name = m.name().to_string();
            match condition {
                "service_healthy" => {
                    let ours = self.paths.read_record(project, m.id());
                    if ours.as_ref().and_then(|o| o.healthcheck.as_ref()).is_none() {
                        return Err(Error::Invalid(format!(
                            "container {name} has no healthcheck configured"
                        )));
                    }
                    rep.status("Container", &name, "Waiting");
                    loop {
                        let rec = self.runtime.containers.read(m.id())?;
                        let st = rec.live_state();
                        if st.status != mc_runtime::Status::Running {
                            return Err(Error::Invalid(format!(
                                "container {name} exited ({})",
                                st.exit_code
                            )));
                        }
                        if let Some(h) = self.paths.read_health(project, m.id()) {
                            if h.pid_start == st.pid_start {
                                if h.status == "healthy" {
                                    break;
                                }
                                if h.status == "unhealthy" {
                                    return Err(Error::Invalid(format!(
                                        "container {name} is unhealthy"
                                    )));
                                }
                            }
                        }
                        sleep_ms(100);
                    }
                    rep.status("Container", &name, "Healthy");
                }
                "service_completed_successfully" => {
                    rep.status("Container", &name, "Waiting");
                    let code = loop {
                        let st = self.runtime.containers.read(m.id())?.live_state();
                        if st.status == mc_runtime::Status::Exited {
                            break st.exit_code;
                        }
                        sleep_ms(100);
                    };
                    if code != 0 {
                        return Err(Error::Invalid(format!(
                            "service {dep} didn't complete successfully: exit {code}"
                        )));
                    }
                    rep.status("Container", &name, "Exited");
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `up` (and `create` with `no_start`): returns the containers of the
    /// selected services, in start order.
    pub fn up(
        &self,
        project: &Project,
        opts: &UpOptions,
        rep: &mut dyn Reporter,
    ) -> Result<Vec<Member>, Error> {
        mc_runtime::require_root()?;
        for w in &project.warnings {
            rep.warn(w);
        }
        for scaled in opts.scale.keys() {
            if !project.services.contains_key(scaled) {
                return Err(Error::Invalid(format!(
                    "--scale: no such service: {scaled}"
                )));
            }
        }
        let order = plan::selection(&project.services, &opts.services, opts.no_deps)?;
        for s in &order {
            for w in convert::unsupported(s, &project.services[s]) {
                rep.warn(&w);
            }
            let want = opts
                .scale
                .get(s)
                .copied()
                .unwrap_or_else(|| project.services[s].replicas());
            if want > 1 && project.services[s].container_name.is_some() {
                return Err(Error::Invalid(format!(
                    "service {s}: container_name is set, so it cannot be scaled to {want}: remove container_name"
                )));
            }
        }
        let mut images = HashMap::new();
        for s in &order {
            images.insert(s.clone(), self.ensure_image(s, &project.services[s], rep)?);
        }
        self.write_project(project)?;
        self.ensure_networks(project, &order, rep)?;
        self.ensure_volumes(project, &order, rep)?;
        if !opts.no_start {
            self.ensure_supervisor(&project.name)?;
        }

        let all = self.members(&project.name);
        // Orphans: containers of services no longer in the file.
        let orphans: Vec<&Member> = all
            .iter()
            .filter(|m| {
                !m.oneoff
                    && !project.services.contains_key(&m.service)
                    && !project.disabled_services.contains_key(&m.service)
            })
            .collect();
        if !orphans.is_empty() {
            if opts.remove_orphans {
                for m in &orphans {
                    rep.status("Container", m.name(), "Removing");
                    self.remove_container(&project.name, m.id(), false)?;
                    rep.status("Container", m.name(), "Removed");
                }
            } else {
                let names: Vec<&str> = orphans.iter().map(|m| m.name()).collect();
                rep.warn(&format!(
                    "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                    names.join(" ")
                ));
            }
        }

        let mut recreated: Vec<String> = Vec::new();
        let levels = plan::levels(&project.services);
        let mut by_level: Vec<Vec<&String>> = Vec::new();
        for svc in &order {
            let l = levels.get(svc).copied().unwrap_or(0);
            if by_level.len() <= l {
                by_level.resize(l + 1, Vec::new());
            }
            by_level[l].push(svc);
        }
        for level in by_level {
            // Containers of one level start together (forked), after the level's
            // creations and removals.
            let mut to_start: Vec<(String, String)> = Vec::new();
            for svc in level {
                let s = &project.services[svc];
                let (image_ref, image) = &images[svc];
                let svc_hash = hash::service_hash(s);
                let existing: Vec<Existing> = all
                    .iter()
                    .filter(|m| m.service == *svc && !m.oneoff)
                    .map(|m| Existing {
                        id: m.id().to_string(),
                        number: m.number,
                        hash: m
                            .rec
                            .spec
                            .labels
                            .get(LABEL_HASH)
                            .cloned()
                            .unwrap_or_default(),
                        image_id: m
                            .rec
                            .spec
                            .labels
                            .get(LABEL_IMAGE)
                            .cloned()
                            .unwrap_or_default(),
                        running: m.running(),
                    })
                    .collect();
                let want = opts.scale.get(svc).copied().unwrap_or_else(|| s.replicas());
                // depends_on with restart: true — a recreated dependency restarts us.
                let dep_restarted = s
                    .depends_on
                    .iter()
                    .any(|(d, dep)| dep.restart && recreated.contains(d));
                let mut actions =
                    plan::reconcile(&existing, want, &svc_hash, &image.id, opts.recreate);
                if !opts.no_start {
                    self.wait_dependencies(project, svc, rep)?;
                }
                actions.sort_by_key(|(n, a)| (!matches!(a, Action::Remove { .. }), *n));
                for (number, action) in actions {
                    match action {
                        Action::Remove { id } => {
                            let name = all
                                .iter()
                                .find(|m| m.id() == id)
                                .map(|m| m.name().to_string())
                                .unwrap_or_default();
                            rep.status("Container", &name, "Stopping");
                            self.stop_container(&project.name, &id, opts.timeout)?;
                            rep.status("Container", &name, "Removing");
                            self.remove_container(&project.name, &id, false)?;
                            rep.status("Container", &name, "Removed");
                        }
                        Action::Keep { id } => {
                            let name = all
                                .iter()
                                .find(|m| m.id() == id)
                                .map(|m| m.name().to_string())
                                .unwrap_or_default();
                            if dep_restarted && !opts.no_start {
                                rep.status("Container", &name, "Restarting");
                                self.stop_container(&project.name, &id, opts.timeout)?;
                                to_start.push((id.clone(), name));
                            } else {
                                rep.status("Container", &name, "Running");
                            }
                        }
                        Action::Start { id } => {
                            let name = all
                                .iter()
                                .find(|m| m.id() == id)
                                .map(|m| m.name().to_string())
                                .unwrap_or_default();
                            if !opts.no_start {
                                to_start.push((id.clone(), name));
                            }
                        }
                        Action::Recreate { id } => {
                            let name = all
                                .iter()
                                .find(|m| m.id() == id)
                                .map(|m| m.name().to_string())
                                .unwrap_or_default();
                            rep.status("Container", &name, "Recreate");
                            self.stop_container(&project.name, &id, opts.timeout)?;
                            let keep = self.anon_volumes_by_target(&project.name, &id);
                            self.remove_container(&project.name, &id, false)?;
                            let (rec, _) = self.create_container(
                                project, svc, s, image_ref, image, number, false, true, false,
                                None, keep,
                            )?;
                            rep.status("Container", &rec.spec.name, "Recreated");
                            recreated.push(svc.clone());
                            if !opts.no_start {
                                to_start.push((rec.spec.id.clone(), rec.spec.name.clone()));
                            }
                        }
                        Action::Create => {
                            let name = s.container_name.clone().unwrap_or_else(|| {
                                naming::container_name(&project.name, svc, number)
                            });
                            rep.status("Container", &name, "Creating");
                            let (rec, _) = self.create_container(
                                project,
                                svc,
                                s,
                                image_ref,
                                image,
                                number,
                                false,
                                true,
                                false,
                                None,
                                BTreeMap::new(),
                            )?;
                            rep.status("Container", &rec.spec.name, "Created");
                            if !opts.no_start {
                                to_start.push((rec.spec.id.clone(), rec.spec.name.clone()));
                            }
                        }
                    }
                }
            }
            self.start_many(&project.name, &to_start, rep)?;
        }
        self.notify_supervisor(&project.name);
        let members = self.members(&project.name);
        let mut out = Vec::new();
        for svc in &order {
            let mut m: Vec<Member> = members
                .iter()
                .filter(|m| m.service == *svc && !m.oneoff)
                .cloned()
                .collect();
            m.sort_by_key(|m| m.number);
            out.extend(m);
        }
        Ok(out)
    }

    /// Start several containers at once: one forked child each (at most
    /// four at a time), as docker compose starts a level in parallel. The
    /// children are single-threaded copies of us, so the runtime may fork
    /// in them. The first failure is returned, after every child is done.
    fn start_many(
        &self,
        project: &str,
        list: &[(String, String)],
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        use std::io::Read as _;
        use std::os::fd::AsRawFd as _;
        if list.len() < 2 {
            for (id, name) in list {
                self.start_reporting(project, id, name, rep)?;
            }
            return Ok(());
        }
        const MAX: usize = 4;
        let mut pending = list.iter();
        let mut children: Vec<(i32, &str, std::fs::File)> = Vec::new();
        let mut failure: Option<Error> = None;
        loop {
            while children.len() < MAX && failure.is_none() {
                let Some((id, name)) = pending.next() else {
                    break;
                };
                rep.status("Container", name, "Starting");
                let (r, w) = nix::unistd::pipe().context("pipe")?;
                // SAFETY: this process is single-threaded (the runtime's contract).
                let pid = unsafe { libc::fork() };
                if pid < 0 {
                    failure = Some(
                        anyhow::Error::from(std::io::Error::last_os_error())
                            .context("fork")
                            .into(),
                    );
                    break;
                }
                if pid == 0 {
                    drop(r);
                    let code = match self.start_container(project, id) {
                        Ok(warnings) => {
                            for wmsg in warnings {
                                rep.warn(&wmsg);
                            }
                            0
                        }
                        Err(e) => {
                            let msg = format!("{}{e:#}", if e.is_user_error() { "U" } else { "O" });
                            // SAFETY: write our message to the pipe we own.
                            unsafe { libc::write(w.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
                            1
                        }
                    };
                    // SAFETY: leave the forked child without the parent's cleanup.
                    unsafe { libc::_exit(code) }
                }
                drop(w);
                children.push((pid, name, std::fs::File::from(r)));
            }
            if children.is_empty() {
                break;
            }
            let mut i = 0;
            let mut reaped = false;
            while i < children.len() {
                let mut st = 0;
                // SAFETY: our own child.
                let r = unsafe { libc::waitpid(children[i].0, &mut st, libc::WNOHANG) };
                if r == 0 {
                    i += 1;
                    continue;
                }
                reaped = true;
                let (_, name, mut f) = children.swap_remove(i);
                let mut msg = String::new();
                let _ = f.read_to_string(&mut msg);
                if r > 0 && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 {
                    rep.status("Container", name, "Started");
                } else if failure.is_none() {
                    failure = Some(match msg.split_at_checked(1) {
                        Some(("U", m)) => Error::Invalid(m.to_string()),
                        Some((_, m)) if !m.is_empty() => Error::Other(anyhow::anyhow!("{m}")),
                        _ => Error::Other(anyhow::anyhow!("starting {name} failed")),
                    });
                }
            }
            if !reaped {
                sleep_ms(2);
            }
        }
        self.notify_supervisor(project);
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn start_reporting(
        &self,
        project: &str,
        id: &str,
        name: &str,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        rep.status("Container", name, "Starting");
        for w in self.start_container(project, id)? {
            rep.warn(&w);
        }
        rep.status("Container", name, "Started");
        self.notify_supervisor(project);
        Ok(())
    }

    /// `--wait`: every container running (and healthy when it has a healthcheck).
    pub fn wait_ready(
        &self,
        project: &str,
        members: &[Member],
        timeout: Option<Duration>,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        for m in members {
            let name = m.name().to_string();
            rep.status("Container", &name, "Waiting");
            loop {
                let st = self.runtime.containers.read(m.id())?.live_state();
                if st.status != mc_runtime::Status::Running {
                    return Err(Error::Invalid(format!(
                        "container {name} exited ({})",
                        st.exit_code
                    )));
                }
                let hc = self
                    .paths
                    .read_record(project, m.id())
                    .and_then(|r| r.healthcheck);
                if hc.is_none() {
                    break;
                }
                if let Some(h) = self.paths.read_health(project, m.id()) {
                    if h.pid_start == st.pid_start && h.status == "healthy" {
                        break;
                    }
                    if h.pid_start == st.pid_start && h.status == "unhealthy" {
                        return Err(Error::Invalid(format!("container {name} is unhealthy")));
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::Invalid(format!(
                        "timeout waiting for container {name} to be healthy"
                    )));
                }
                sleep_ms(100);
            }
            rep.status("Container", &name, "Healthy");
        }
        Ok(())
    }

    /// Members of the selected services (all when empty), in start order;
    /// unknown service names are an error.
    pub fn select(
        &self,
        project: &Project,
        services: &[String],
        oneoff: bool,
    ) -> Result<Vec<Member>, Error> {
        for s in services {
            if !project.services.contains_key(s)
                && !self.members(&project.name).iter().any(|m| m.service == *s)
            {
                return Err(Error::Invalid(format!("no such service: {s}")));
            }
        }
        let order = plan::start_order(&project.services).unwrap_or_default();
        let mut members: Vec<Member> = self
            .members(&project.name)
            .into_iter()
            .filter(|m| {
                (oneoff || !m.oneoff) && (services.is_empty() || services.contains(&m.service))
            })
            .collect();
        members.sort_by_key(|m| {
            (
                order
                    .iter()
                    .position(|s| *s == m.service)
                    .unwrap_or(usize::MAX),
                m.number,
            )
        });
        Ok(members)
    }

    /// `stop`: dependents first; the containers of one level together.
    pub fn stop(
        &self,
        project: &Project,
        services: &[String],
        timeout: Option<u64>,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let members = self.select(project, services, false)?;
        self.stop_parallel(project, &members, timeout, rep);
        Ok(())
    }

    /// Stop containers level by level (dependents first). Within a level
    /// every container gets its stop signal at once, then each gets
    /// SIGKILL when its grace period is over, as docker compose does.
    pub fn stop_parallel(
        &self,
        project: &Project,
        members: &[Member],
        timeout: Option<u64>,
        rep: &mut dyn Reporter,
    ) {
        let levels = plan::levels(&project.services);
        let level = |m: &Member| -> usize {
            if m.oneoff {
                usize::MAX
            } else {
                levels.get(&m.service).copied().unwrap_or(usize::MAX)
            }
        };
        let mut order: Vec<usize> = members.iter().map(level).collect();
        order.sort_unstable();
        order.dedup();
        for lvl in order.into_iter().rev() {
            let now = Instant::now();
            let mut pending: Vec<(&Member, Instant, bool)> = Vec::new();
            for m in members.iter().filter(|m| level(m) == lvl) {
                self.paths.set_stopped_by_user(&project.name, m.id(), true);
                if !m.running() {
                    continue;
                }
                rep.status("Container", m.name(), "Stopping");
                tracing::info!(target: "explain::engine", "stop {}: signal {}", m.name(), m.rec.spec.stop_signal);
                let _ = self.runtime.kill(m.id(), m.rec.spec.stop_signal);
                let grace = Duration::from_secs(timeout.unwrap_or(m.rec.spec.stop_timeout));
                pending.push((m, now + grace, false));
            }
            while !pending.is_empty() {
                pending.retain_mut(|(m, deadline, killed)| {
                    let running = self
                        .runtime
                        .containers
                        .read(m.id())
                        .map(|r| r.live_state().status == mc_runtime::Status::Running)
                        .unwrap_or(false);
                    if !running {
                        rep.status("Container", m.name(), "Stopped");
                        return false;
                    }
                    if !*killed && Instant::now() >= *deadline {
                        tracing::info!(target: "explain::engine", "stop {}: grace period over, SIGKILL", m.name());
                        let _ = self.runtime.kill(m.id(), libc::SIGKILL);
                        *killed = true;
                    }
                    true
                });
                if !pending.is_empty() {
                    sleep_ms(2);
                }
            }
        }
    }

    /// `start`: dependency order, waiting for conditions.
    pub fn start(
        &self,
        project: &Project,
        services: &[String],
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        mc_runtime::require_root()?;
        let members = self.select(project, services, false)?;
        if members.is_empty() {
            return Err(Error::Invalid(
                "no containers to start: run `up` first".into(),
            ));
        }
        self.ensure_supervisor(&project.name)?;
        let mut last_service = String::new();
        for m in members.iter().filter(|m| !m.running()) {
            if m.service != last_service && project.services.contains_key(&m.service) {
                self.wait_dependencies(project, &m.service, rep)?;
                last_service = m.service.clone();
            }
            self.start_reporting(&project.name, m.id(), m.name(), rep)?;
        }
        Ok(())
    }

    /// `restart`: stop then start each container (dependents with restart: true too).
    pub fn restart(
        &self,
        project: &Project,
        services: &[String],
        timeout: Option<u64>,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let mut selected: Vec<String> = services.to_vec();
        if !selected.is_empty() {
            for (name, s) in &project.services {
                if s.depends_on
                    .iter()
                    .any(|(d, dep)| dep.restart && services.contains(d))
                    && !selected.contains(name)
                {
                    selected.push(name.clone());
                }
            }
        }
        let members = self.select(project, &selected, false)?;
        self.ensure_supervisor(&project.name)?;
        for m in members.iter().rev().filter(|m| m.running()) {
            rep.status("Container", m.name(), "Restarting");
            self.stop_container(&project.name, m.id(), timeout)?;
        }
        for m in &members {
            self.start_container(&project.name, m.id())?;
            rep.status("Container", m.name(), "Started");
        }
        self.notify_supervisor(&project.name);
        Ok(())
    }

    /// `kill`: send a signal to running containers.
    pub fn kill(
        &self,
        project: &Project,
        services: &[String],
        signal: i32,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let members = self.select(project, services, false)?;
        for m in members.iter().filter(|m| m.running()) {
            self.paths.set_stopped_by_user(&project.name, m.id(), true);
            rep.status("Container", m.name(), "Killing");
            self.runtime.kill(m.id(), signal)?;
            rep.status("Container", m.name(), "Killed");
        }
        Ok(())
    }

    /// `rm`: stopped containers (running ones with `stop`).
    pub fn rm(
        &self,
        project: &Project,
        services: &[String],
        stop_first: bool,
        volumes: bool,
        rep: &mut dyn Reporter,
    ) -> Result<usize, Error> {
        let members = self.select(project, services, false)?;
        let mut n = 0;
        for m in members.iter().rev() {
            if m.running() {
                if !stop_first {
                    continue;
                }
                rep.status("Container", m.name(), "Stopping");
                self.stop_container(&project.name, m.id(), None)?;
            }
            rep.status("Container", m.name(), "Removing");
            self.remove_container(&project.name, m.id(), volumes)?;
            rep.status("Container", m.name(), "Removed");
            n += 1;
        }
        Ok(n)
    }

    /// `down`: stop and remove every container of the project (reverse
    /// dependency order), its networks and, with `volumes`, its volumes.
    pub fn down(
        &self,
        project: &Project,
        remove_orphans: bool,
        volumes_too: bool,
        timeout: Option<u64>,
        rep: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let order = plan::start_order(&project.services).unwrap_or_default();
        let mut members: Vec<Member> = self
            .members(&project.name)
            .into_iter()
            .filter(|m| {
                remove_orphans
                    || m.oneoff
                    || project.services.contains_key(&m.service)
                    || project.disabled_services.contains_key(&m.service)
            })
            .collect();
        members.sort_by_key(|m| {
            (
                std::cmp::Reverse(
                    order
                        .iter()
                        .position(|s| *s == m.service)
                        .unwrap_or(usize::MAX),
                ),
                m.number,
            )
        });
        self.stop_parallel(project, &members, timeout, rep);
        for m in &members {
            rep.status("Container", m.name(), "Removing");
            self.remove_container(&project.name, m.id(), volumes_too)?;
            rep.status("Container", m.name(), "Removed");
        }
        let left: Vec<Member> = self.members(&project.name);
        if !left.is_empty() {
            let names: Vec<&str> = left.iter().map(|m| m.name()).collect();
            rep.warn(&format!(
                "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                names.join(" ")
            ));
        }
        // Networks of this project (not external ones).
        let nets = self.net.networks()?;
        for (key, decl) in &project.networks {
            if decl.external {
                continue;
            }
            let Some(n) = nets.store().load_network(&decl.name)? else {
                continue;
            };
            if n.labels.get(LABEL_PROJECT) != Some(&project.name) {
                rep.warn(&format!(
                    "network {} was not created by this project: left in place",
                    decl.name
                ));
                continue;
            }
            rep.status("Network", &decl.name, "Removing");
            match nets.remove(&decl.name) {
                Ok(()) => rep.status("Network", &decl.name, "Removed"),
                Err(e) => rep.warn(&format!("network {key}: {e}")),
            }
        }
        if volumes_too {
            for decl in project.volumes.values().filter(|v| !v.external) {
                if volumes::exists(&self.paths, &decl.name) {
                    rep.status("Volume", &decl.name, "Removing");
                    volumes::remove(&self.paths, &decl.name)?;
                    rep.status("Volume", &decl.name, "Removed");
                }
            }
        }
        if left.is_empty() {
            self.stop_supervisor(&project.name);
            let _ = std::fs::remove_dir_all(self.paths.run_dir(&project.name));
            let _ = std::fs::remove_dir_all(self.paths.project_dir(&project.name));
        }
        Ok(())
    }

    /// `run`: create a one-off container of a service (dependencies started
    /// unless `no_deps`). Returns it, created but not started.
    pub fn run_create(
        &self,
        project: &Project,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<Record, Error> {
        mc_runtime::require_root()?;
        let Some(base) = project.services.get(&opts.service) else {
            return Err(Error::Invalid(format!("no such service: {}", opts.service)));
        };
        if !opts.no_deps && !base.depends_on.is_empty() {
            let deps: Vec<String> = base
                .depends_on
                .keys()
                .filter(|d| project.services.contains_key(*d))
                .cloned()
                .collect();
            let up = UpOptions {
                services: deps,
                recreate: RecreatePolicy::Never,
                ..Default::default()
            };
            self.up(project, &up, rep)?;
            self.wait_dependencies(project, &opts.service, rep)?;
        }
        let mut s = base.clone();
        if !opts.command.is_empty() {
            s.command = Some(opts.command.clone());
        }
        if let Some(e) = &opts.entrypoint {
            s.entrypoint = Some(e.clone());
            if opts.command.is_empty() {
                s.command = None;
            }
        }
        for (k, v) in &opts.env {
            s.environment.insert(k.clone(), Some(v.clone()));
        }
        if opts.user.is_some() {
            s.user = opts.user.clone();
        }
        if opts.workdir.is_some() {
            s.working_dir = opts.workdir.clone();
        }
        if !opts.service_ports {
            s.ports = opts.publish.clone();
        }
        s.restart = None;
        s.container_name = None;
        s.healthcheck = None;
        let (image_ref, image) = self.ensure_image(&opts.service, &s, rep)?;
        let svc = vec![opts.service.clone()];
        self.write_project(project)?;
        self.ensure_networks(project, &svc, rep)?;
        self.ensure_volumes(project, &svc, rep)?;
        let (rec, _) = self.create_container(
            project,
            &opts.service,
            &s,
            &image_ref,
            &image,
            1,
            true,
            true,
            opts.remove,
            opts.name.clone(),
            BTreeMap::new(),
        )?;
        Ok(rec)
    }

    /// Run a one-off in the foreground, attached; returns its exit code.
    pub fn run_foreground(
        &self,
        project: &str,
        rec: &Record,
        attach: mc_runtime::Attach,
    ) -> Result<i32, Error> {
        let ours = self
            .paths
            .read_record(project, &rec.spec.id)
            .context("the one-off container has no compose record")?;
        let mut hook = Hook {
            ctx: &self.net,
            rec: &ours,
            hostname: rec.spec.hostname.clone(),
            dir: rec.dir.clone(),
        };
        let ctx = self.net.clone();
        let mut teardown = move |cid: &str| ctx.detach(cid);
        let code = self
            .runtime
            .run_foreground(rec, attach, &mut hook, &mut teardown)?;
        if rec.spec.auto_remove {
            // `run --rm` also drops the container's anonymous volumes, as docker does.
            for v in ours.anon_volumes {
                let _ = volumes::remove(&self.paths, &v);
            }
            self.paths.remove_record(project, &rec.spec.id);
        }
        Ok(code)
    }

    /// The container of a service for exec/port (`--index`, default 1).
    pub fn service_container(
        &self,
        project: &Project,
        service: &str,
        index: u32,
    ) -> Result<Member, Error> {
        if !project.services.contains_key(service) {
            return Err(Error::Invalid(format!("no such service: {service}")));
        }
        self.members(&project.name)
            .into_iter()
            .find(|m| m.service == service && !m.oneoff && m.number == index)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "service \"{service}\" is not running container #{index}"
                ))
            })
    }
}

/// The named volumes `services` mount: (service, volume key) pairs.
fn used_volumes<'p>(
    project: &'p Project,
    services: &'p [String],
) -> impl Iterator<Item = (&'p String, &'p String)> {
    services.iter().flat_map(move |s| {
        project.services[s]
            .volumes
            .iter()
            .filter(|v| v.kind == "volume" && !v.source.is_empty())
            .map(move |v| (s, &v.source))
    })
}

/// The networks `services` attach to (not those with a network_mode), in
/// first-use order.
fn used_networks<'p>(project: &'p Project, services: &[String]) -> Vec<&'p String> {
    let mut used: Vec<&String> = Vec::new();
    for s in services {
        let svc = &project.services[s];
        if svc.network_mode.is_some() {
            continue;
        }
        for k in svc.networks.keys() {
            if !used.contains(&k) {
                used.push(k);
            }
        }
    }
    used
}
