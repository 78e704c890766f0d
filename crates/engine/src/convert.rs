//! A compose service + its image → the runtime's container spec and the
//! engine's record (networks, health, restart). Docker's rules: the
//! service's entrypoint replaces the image's and drops its cmd; command
//! replaces cmd; environment is added to the image's.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use mc_compose::{Port, Project, Service};
use mc_runtime::{ContainerSpec, MountSpec, Resources};

use crate::naming;
use crate::restart::Policy;
use crate::state::{ContainerRecord, HealthConfig, NetAttach, Paths};
use crate::volumes;
use crate::Error;

/// Everything needed to create one container.
pub struct Built {
    pub spec: ContainerSpec,
    pub record: ContainerRecord,
    /// Named volumes to fill from the image: (volume, mount target).
    pub fill: Vec<(String, String)>,
}

pub struct Input<'a> {
    pub project: &'a Project,
    pub service_name: &'a str,
    pub service: &'a Service,
    pub image: &'a mc_image::LocalImage,
    pub image_ref: &'a str,
    pub id: String,
    pub name: String,
    pub number: u32,
    pub oneoff: bool,
    pub hash: String,
    /// Publish the service's ports (false for `run` without --service-ports).
    pub publish: bool,
    pub auto_remove: bool,
    /// Anonymous volumes of the container this one replaces, by mount
    /// target: a recreated container keeps their data, as in docker compose.
    pub reuse_anon: BTreeMap<String, String>,
}

fn invalid(service: &str, what: String) -> Error {
    Error::Invalid(format!("service {service}: {what}"))
}

pub fn build(paths: &Paths, input: &Input<'_>) -> Result<Built, Error> {
    let s = input.service;
    let svc = input.service_name;
    let cfg = input.image.config.config().clone().unwrap_or_default();
    let img_entry = cfg.entrypoint().clone().unwrap_or_default();
    let img_cmd = cfg.cmd().clone().unwrap_or_default();
    let (entrypoint, cmd) = match (&s.entrypoint, &s.command) {
        (Some(e), Some(c)) => (e.clone(), c.clone()),
        (Some(e), None) => (e.clone(), Vec::new()),
        (None, Some(c)) => (img_entry, c.clone()),
        (None, None) => (img_entry, img_cmd),
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    if args.is_empty() {
        return Err(invalid(
            svc,
            "no command: the image has no CMD or ENTRYPOINT; set `command:`".into(),
        ));
    }
    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", mc_runtime::spec::DEFAULT_PATH));
    }
    let own: Vec<String> = s
        .environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    let env = mc_runtime::spec::merge_env(&env, &own);

    let hostname = s
        .hostname
        .clone()
        .unwrap_or_else(|| input.id.chars().take(12).collect());
    let network_mode = s.network_mode.clone().unwrap_or_default();
    let (network, networks) = match network_mode.as_str() {
        "host" | "none" => (network_mode.clone(), Vec::new()),
        "" | "bridge" => {
            let mut v = Vec::new();
            let mut keys: Vec<(&String, &Option<mc_compose::ServiceNetwork>)> =
                s.networks.iter().collect();
            // compose: higher priority first, then by name.
            keys.sort_by(|a, b| {
                let pa = a.1.as_ref().and_then(|n| n.priority).unwrap_or(0);
                let pb = b.1.as_ref().and_then(|n| n.priority).unwrap_or(0);
                pb.cmp(&pa).then(a.0.cmp(b.0))
            });
            for (i, (key, opts)) in keys.into_iter().enumerate() {
                let net = input.project.networks.get(key).ok_or_else(|| {
                    invalid(
                        svc,
                        format!("network {key} is not declared under the top-level networks"),
                    )
                })?;
                let mut aliases = vec![svc.to_string()];
                let mut ip = None;
                if let Some(o) = opts {
                    aliases.extend(o.aliases.iter().cloned());
                    if let Some(a) = &o.ipv4_address {
                        ip = Some(a.parse::<Ipv4Addr>().map_err(|_| {
                            invalid(
                                svc,
                                format!(
                                    "ipv4_address {a:?} on network {key} is not an IPv4 address"
                                ),
                            )
                        })?);
                    }
                }
                let ports = if i == 0 && input.publish {
                    port_mappings(svc, &s.ports)?
                } else {
                    Vec::new()
                };
                v.push(NetAttach {
                    network: net.name.clone(),
                    aliases,
                    ip,
                    ports,
                });
            }
            let first = v
                .first()
                .map(|a| a.network.clone())
                .unwrap_or_else(|| "none".into());
            (first, v)
        }
        other => {
            return Err(invalid(
                svc,
                format!("network_mode {other:?} is not supported: use host, none, or networks"),
            ))
        }
    };

    let mut mounts = Vec::new();
    let mut fill = Vec::new();
    let mut anon = Vec::new();
    for v in &s.volumes {
        match v.kind.as_str() {
            "bind" => {
                let src = PathBuf::from(&v.source);
                if !src.exists() {
                    if v.bind.as_ref().is_some_and(|b| b.create_host_path) {
                        std::fs::create_dir_all(&src).map_err(|e| {
                            invalid(
                                svc,
                                format!("cannot create bind source {}: {e}", src.display()),
                            )
                        })?;
                    } else {
                        return Err(invalid(
                            svc,
                            format!("bind source path does not exist: {}", src.display()),
                        ));
                    }
                }
                mounts.push(MountSpec {
                    kind: "bind".into(),
                    source: src,
                    destination: v.target.clone(),
                    read_only: v.read_only,
                    options: String::new(),
                });
            }
            "volume" => {
                let name = if v.source.is_empty() {
                    let n = anon_name(input, &v.target);
                    anon.push(n.clone());
                    n
                } else {
                    match input.project.volumes.get(&v.source) {
                        Some(decl) => decl.name.clone(),
                        None => v.source.clone(),
                    }
                };
                let nocopy = v.volume.as_ref().is_some_and(|o| o.nocopy);
                let mut data = volumes::data_dir(paths, &name);
                if let Some(sub) = v.volume.as_ref().and_then(|o| o.subpath.clone()) {
                    data = data.join(sub.trim_start_matches('/'));
                }
                if !nocopy {
                    fill.push((name.clone(), v.target.clone()));
                }
                mounts.push(MountSpec {
                    kind: "bind".into(),
                    source: data,
                    destination: v.target.clone(),
                    read_only: v.read_only,
                    options: String::new(),
                });
            }
            "tmpfs" => {
                let mut opts = Vec::new();
                if let Some(t) = &v.tmpfs {
                    if let Some(sz) = t.size {
                        opts.push(format!("size={sz}"));
                    }
                    if let Some(m) = t.mode {
                        opts.push(format!("mode={m:o}"));
                    }
                }
                mounts.push(MountSpec {
                    kind: "tmpfs".into(),
                    source: PathBuf::from("tmpfs"),
                    destination: v.target.clone(),
                    read_only: v.read_only,
                    options: opts.join(","),
                });
            }
            other => {
                return Err(invalid(
                    svc,
                    format!("volume type {other} is not supported (use bind, volume or tmpfs)"),
                ))
            }
        }
    }
    // The image's VOLUMEs that nothing above covers become anonymous
    // volumes filled from the image, as Docker does.
    for target in image_volumes(&cfg, &mounts, &s.tmpfs) {
        let name = anon_name(input, &target);
        anon.push(name.clone());
        fill.push((name.clone(), target.clone()));
        mounts.push(MountSpec {
            kind: "bind".into(),
            source: volumes::data_dir(paths, &name),
            destination: target,
            read_only: false,
            options: String::new(),
        });
    }
    for t in &s.tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        mounts.push(MountSpec {
            kind: "tmpfs".into(),
            source: PathBuf::from("tmpfs"),
            destination: dst.into(),
            read_only: false,
            options: opts.into(),
        });
    }

    let privileged = s.privileged;
    let caps = mc_runtime::caps::resolve(&s.cap_add, &s.cap_drop, privileged)
        .map_err(|e| invalid(svc, e.to_string()))?;
    let limits = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let memory = s.mem_limit.or_else(|| limits.and_then(|l| l.memory));
    let cpus = s
        .cpus
        .or_else(|| limits.and_then(|l| l.cpus))
        .filter(|c| *c > 0.0);
    let pids = s.pids_limit.or_else(|| limits.and_then(|l| l.pids));
    if let Some(m) = memory {
        if m < mc_runtime::spec::MIN_MEMORY {
            return Err(invalid(svc, "minimum memory limit allowed is 6MB".into()));
        }
    }
    let resources = Resources {
        memory,
        nano_cpus: cpus.map(|c| (c * 1e9).round() as u64),
        pids_limit: pids,
    };
    let rlimits = ulimits(svc, s)?;
    let mut sysctls = BTreeMap::new();
    for (k, v) in &s.sysctls {
        mc_runtime::validate_sysctl(k, &network).map_err(|e| invalid(svc, e.to_string()))?;
        sysctls.insert(k.clone(), v.clone());
    }
    let stop_signal = match s.stop_signal.as_deref().or(cfg.stop_signal().as_deref()) {
        Some(sig) => {
            mc_runtime::spec::parse_signal(sig).map_err(|e| invalid(svc, e.to_string()))?
        }
        None => libc::SIGTERM,
    };
    let stop_timeout = s.stop_grace_period.map(|d| d.as_secs()).unwrap_or(10);
    let seccomp = !s
        .security_opt
        .iter()
        .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined");

    let mut labels: BTreeMap<String, String> = s
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(naming::container_labels(
        &input.project.name,
        svc,
        input.number,
        &input.hash,
        &input.image.id,
        input.oneoff,
        &input.project.working_dir.to_string_lossy(),
        &input
            .project
            .files
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(","),
    ));

    let spec = ContainerSpec {
        id: input.id.clone(),
        name: input.name.clone(),
        image: input.image_ref.to_string(),
        image_id: input.image.id.clone(),
        layers: input.image.layers.clone(),
        args,
        entrypoint,
        cmd,
        env,
        working_dir: s
            .working_dir
            .clone()
            .or(cfg.working_dir().clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: s.user.clone().or(cfg.user().clone()).unwrap_or_default(),
        hostname: hostname.clone(),
        tty: false,
        open_stdin: false,
        network,
        mounts,
        read_only: s.read_only,
        privileged,
        caps,
        seccomp,
        resources,
        init: s.init.unwrap_or(false),
        stop_signal,
        stop_timeout,
        auto_remove: input.auto_remove,
        created: mc_runtime::state::now_rfc3339(),
        labels,
        rlimits,
        sysctls,
    };

    let restart = match (
        &s.restart,
        s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()),
    ) {
        (Some(r), _) => Policy::parse(r).map_err(|e| invalid(svc, e))?,
        (None, Some(p)) => Policy::from_deploy(p.condition.as_deref(), p.max_attempts),
        (None, None) => Policy::No,
    };
    let mut extra_hosts = Vec::new();
    for h in &s.extra_hosts {
        extra_hosts.push(
            mc_net::files::parse_add_host(h)
                .map_err(|e| invalid(svc, format!("extra_hosts: {e}")))?,
        );
    }
    let mut dns = Vec::new();
    for d in &s.dns {
        dns.push(
            d.parse::<IpAddr>()
                .map_err(|_| invalid(svc, format!("dns {d:?} is not an IP address")))?,
        );
    }
    let record = ContainerRecord {
        id: input.id.clone(),
        name: input.name.clone(),
        project: input.project.name.clone(),
        service: svc.to_string(),
        number: input.number,
        oneoff: input.oneoff,
        restart,
        healthcheck: healthcheck(svc, s)?,
        networks,
        dns,
        extra_hosts,
        anon_volumes: anon,
        exposed: exposed_ports(&cfg.exposed_ports().clone().unwrap_or_default(), &s.expose),
        stopped_by_user: false,
    };
    Ok(Built { spec, record, fill })
}

/// The image's exposed ports and `expose:` entries as `port/proto`, sorted.
pub fn exposed_ports(image: &[String], expose: &[String]) -> Vec<String> {
    let mut out: Vec<String> = image
        .iter()
        .chain(expose.iter())
        .map(|p| {
            if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Published ports → mc_net mappings (host port 0 = pick one).
pub fn port_mappings(svc: &str, ports: &[Port]) -> Result<Vec<mc_net::PortMapping>, Error> {
    let mut out = Vec::new();
    for p in ports {
        let proto = match p.protocol.as_str() {
            "tcp" => mc_net::Proto::Tcp,
            "udp" => mc_net::Proto::Udp,
            other => {
                return Err(invalid(
                    svc,
                    format!("port protocol {other} is not supported (tcp or udp)"),
                ))
            }
        };
        let host_ip = match p.host_ip.as_deref() {
            None | Some("") | Some("0.0.0.0") => None,
            Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
                invalid(
                    svc,
                    format!("host_ip {ip:?} is not an IPv4 address (IPv6 ports are not supported)"),
                )
            })?),
        };
        let host_port = match p.published.as_deref() {
            None | Some("") => 0,
            Some(pub_) => {
                let first = pub_.split('-').next().unwrap_or(pub_);
                first.parse::<u16>().map_err(|_| {
                    invalid(svc, format!("published port {pub_:?} is not a port number"))
                })?
            }
        };
        out.push(mc_net::PortMapping {
            proto,
            host_ip,
            host_port,
            container_port: p.target,
        });
    }
    Ok(out)
}

/// The service's healthcheck (none: no healthcheck, `disable`/NONE included).
pub fn healthcheck(svc: &str, s: &Service) -> Result<Option<HealthConfig>, Error> {
    let Some(h) = &s.healthcheck else {
        return Ok(None);
    };
    if h.disable || h.test.is_empty() {
        return Ok(None);
    }
    let argv = match h.test[0].as_str() {
        "NONE" => return Ok(None),
        "CMD" => h.test[1..].to_vec(),
        "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
        _ => vec!["/bin/sh".into(), "-c".into(), h.test.join(" ")],
    };
    if argv.is_empty() {
        return Err(invalid(svc, "healthcheck test has no command".into()));
    }
    let d30 = Duration::from_secs(30);
    Ok(Some(HealthConfig {
        argv,
        interval: h.interval.filter(|d| !d.is_zero()).unwrap_or(d30),
        timeout: h.timeout.filter(|d| !d.is_zero()).unwrap_or(d30),
        retries: h.retries.filter(|r| *r > 0).unwrap_or(3),
        start_period: h.start_period.unwrap_or_default(),
        start_interval: h
            .start_interval
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(5)),
    }))
}

/// `ulimits:` as runtime rlimits (`-1` is unlimited, as in Docker). The
/// runtime clamps a hard limit above the host's and warns.
fn ulimits(svc: &str, s: &Service) -> Result<Vec<mc_runtime::Rlimit>, Error> {
    let value = |n: i64| if n < 0 { u64::MAX } else { n as u64 };
    let mut out = Vec::new();
    for (name, u) in &s.ulimits {
        let (soft, hard) = match u {
            mc_compose::Ulimit::Single(n) => (value(*n), value(*n)),
            mc_compose::Ulimit::SoftHard { soft, hard } => (value(*soft), value(*hard)),
        };
        let r = mc_runtime::Rlimit {
            name: name.clone(),
            soft,
            hard,
        };
        mc_runtime::limits::validate_rlimit(&r).map_err(|e| invalid(svc, e.to_string()))?;
        out.push(r);
    }
    Ok(out)
}

/// Keys of a service that the engine does not act on: one warning each.
pub fn unsupported(svc: &str, s: &Service) -> Vec<String> {
    let mut keys: Vec<&str> = Vec::new();
    let mut add = |cond: bool, k: &'static str| {
        if cond {
            keys.push(k);
        }
    };
    add(!s.devices.is_empty(), "devices");
    add(!s.group_add.is_empty(), "group_add");
    add(s.ipc.is_some(), "ipc");
    add(s.pid.is_some(), "pid");
    add(s.uts.is_some(), "uts");
    add(s.userns_mode.is_some(), "userns_mode");
    add(s.shm_size.is_some(), "shm_size");
    add(s.mem_reservation.is_some(), "mem_reservation");
    add(s.memswap_limit.is_some(), "memswap_limit");
    add(s.oom_score_adj.is_some(), "oom_score_adj");
    add(s.mac_address.is_some(), "mac_address");
    add(s.domainname.is_some(), "domainname");
    add(!s.dns_opt.is_empty(), "dns_opt");
    add(!s.dns_search.is_empty(), "dns_search");
    add(!s.volumes_from.is_empty(), "volumes_from");
    add(s.tty, "tty");
    add(s.stdin_open, "stdin_open");
    add(s.logging.is_some(), "logging");
    add(s.platform.is_some(), "platform");
    add(
        s.security_opt.iter().any(|o| !o.starts_with("seccomp")),
        "security_opt",
    );
    add(
        s.networks
            .values()
            .flatten()
            .any(|n| n.ipv6_address.is_some()),
        "networks.*.ipv6_address",
    );
    keys.into_iter()
        .map(|k| format!("service {svc}: `{k}` is not supported by minicompose yet and is ignored"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_like_docker() {
        let e = exposed_ports(
            &["6379/tcp".into()],
            &["3000".into(), "53/udp".into(), "6379".into()],
        );
        assert_eq!(e, vec!["3000/tcp", "53/udp", "6379/tcp"]);
    }

    #[test]
    fn healthcheck_forms() {
        let mut s = Service::default();
        assert_eq!(healthcheck("s", &s).unwrap(), None);
        s.healthcheck = Some(mc_compose::Healthcheck {
            test: vec!["CMD-SHELL".into(), "exit 0".into()],
            ..Default::default()
        });
        let h = healthcheck("s", &s).unwrap().unwrap();
        assert_eq!(h.argv, vec!["/bin/sh", "-c", "exit 0"]);
        assert_eq!((h.interval, h.retries), (Duration::from_secs(30), 3));
        s.healthcheck = Some(mc_compose::Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        });
        assert_eq!(healthcheck("s", &s).unwrap(), None);
    }

    #[test]
    fn ports_to_mappings() {
        let p = Port {
            name: None,
            mode: "ingress".into(),
            host_ip: Some("127.0.0.1".into()),
            target: 80,
            published: Some("8080".into()),
            protocol: "tcp".into(),
            app_protocol: None,
        };
        let m = port_mappings("web", std::slice::from_ref(&p)).unwrap();
        assert_eq!((m[0].host_port, m[0].container_port), (8080, 80));
        let bad = Port {
            protocol: "sctp".into(),
            ..p
        };
        assert!(port_mappings("web", &[bad]).unwrap_err().is_user_error());
    }
}

/// A fresh anonymous volume, or the one the replaced container had there.
fn anon_name(input: &Input<'_>, target: &str) -> String {
    let t = target.trim_end_matches('/');
    input
        .reuse_anon
        .get(t)
        .cloned()
        .unwrap_or_else(mc_runtime::state::new_id)
}

/// The image config's `Volumes` not already mounted by the service (paths
/// compared without trailing slashes), sorted for a stable order.
fn image_volumes(
    cfg: &oci_spec::image::Config,
    mounts: &[MountSpec],
    tmpfs: &[String],
) -> Vec<String> {
    let clean = |p: &str| {
        let t = p.trim_end_matches('/');
        if t.is_empty() {
            "/".to_string()
        } else {
            t.to_string()
        }
    };
    let taken: Vec<String> = mounts
        .iter()
        .map(|m| clean(&m.destination))
        .chain(
            tmpfs
                .iter()
                .map(|t| clean(t.split(':').next().unwrap_or(t))),
        )
        .collect();
    let mut out: Vec<String> = cfg
        .volumes()
        .iter()
        .flatten()
        .map(|v| clean(v))
        .filter(|v| v.starts_with('/') && !taken.contains(v))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod image_volume_tests {
    use super::*;

    #[test]
    fn image_volumes_skip_what_the_service_mounts() {
        let cfg: oci_spec::image::Config = serde_json::from_str(
            r#"{"Volumes": {"/data": {}, "/cache/": {}, "/tmp/x": {}, "relative": {}}}"#,
        )
        .unwrap();
        let mounts = vec![MountSpec {
            kind: "bind".into(),
            source: PathBuf::from("/srv"),
            destination: "/data/".into(),
            read_only: false,
            options: String::new(),
        }];
        let tmpfs = vec!["/tmp/x:size=1m".to_string()];
        assert_eq!(image_volumes(&cfg, &mounts, &tmpfs), vec!["/cache"]);
    }
}
