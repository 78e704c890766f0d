//! Network flags of `container run` and the glue that attaches a container
//! to a network. Owned by the networking work; `container run` flattens
//! [`NetArgs`] into its arguments, calls [`validate`] before creating
//! anything, [`setup`] from the runtime's network hook (after the
//! container's namespaces exist, before its process execs) and
//! [`teardown`] when the container is removed. [`port_lines`] serves
//! `container port`.

// Called by `container run` (the runtime's side), which lands separately.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mc_net::files::{self, ResolvConf};
use mc_net::{AttachRequest, DnsLauncher, NetnsRef, Networks, PortMapping};

use crate::exit::user_error;
use crate::global::Global;

#[derive(Args, Debug, Clone, Default)]
pub struct NetArgs {
    /// Connect to a network: `none`, `host`, or a network's name
    #[arg(long = "network", alias = "net", default_value = "none")]
    pub network: String,
    /// Add a network-scoped DNS alias for the container (repeatable)
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Publish container ports: [IP:][HOST[-HOST2]:]CONTAINER[-C2][/udp] (repeatable)
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Upstream DNS server for names that are not containers (repeatable)
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Add a line to /etc/hosts: NAME:IP (repeatable)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// IPv4 address on the network (default: the next free one)
    #[arg(long = "ip")]
    pub ip: Option<String>,
}

/// What the runtime knows about the container being attached.
#[derive(Debug, Clone)]
pub struct NetContext {
    pub id: String,
    pub name: String,
    pub hostname: String,
    /// A process inside the container's network namespace (its init).
    pub pid: u32,
    /// `<root>/containers/<id>/hosts` and `resolv.conf`, bind-mounted.
    pub hosts_path: PathBuf,
    pub resolv_path: PathBuf,
}

/// Flags after parsing.
pub struct Parsed {
    pub ports: Vec<PortMapping>,
    pub dns: Vec<IpAddr>,
    pub add_hosts: Vec<(String, IpAddr)>,
    pub ip: Option<Ipv4Addr>,
}

/// Whether the flags ask for a bridge network (not `none`/`host`).
pub fn is_bridge(args: &NetArgs) -> bool {
    !matches!(args.network.as_str(), "none" | "host")
}

fn parse(args: &NetArgs) -> anyhow::Result<Parsed> {
    let mut ports = Vec::new();
    for p in &args.publish {
        ports.extend(mc_net::ports::parse(p)?);
    }
    let dns = args
        .dns
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|_| user_error(format!("invalid --dns {d:?}: expected an IP address")))
        })
        .collect::<anyhow::Result<Vec<IpAddr>>>()?;
    let add_hosts = args
        .add_host
        .iter()
        .map(|h| files::parse_add_host(h).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ip = match &args.ip {
        Some(s) => Some(
            s.parse()
                .map_err(|_| user_error(format!("invalid --ip {s:?}: expected an IPv4 address")))?,
        ),
        None => None,
    };
    Ok(Parsed {
        ports,
        dns,
        add_hosts,
        ip,
    })
}

/// Check the flags (and that the network exists) before anything starts.
pub fn validate(global: &Global, args: &NetArgs) -> anyhow::Result<Parsed> {
    let parsed = parse(args)?;
    if !is_bridge(args) {
        for (flag, used) in [
            ("--ip", parsed.ip.is_some()),
            ("-p", !parsed.ports.is_empty()),
            ("--network-alias", !args.network_alias.is_empty()),
        ] {
            if used {
                return Err(user_error(format!(
                    "{flag} needs a bridge network, not --network {}: create one with `minicompose network create NAME`",
                    args.network
                )));
            }
        }
        return Ok(parsed);
    }
    let nets = Networks::open(&global.root)?;
    let net = nets.get(&args.network)?;
    if let Some(ip) = parsed.ip {
        if !net.subnet.contains(&ip) {
            return Err(user_error(format!(
                "--ip {ip} is outside network {}'s subnet {}",
                net.name, net.subnet
            )));
        }
    }
    // Port conflicts are reported before anything starts; attach checks
    // again under the lock.
    let owned: Vec<(PortMapping, String)> = nets
        .endpoints()?
        .iter()
        .flat_map(|e| e.ports.iter().map(|p| (*p, e.container_name.clone())))
        .collect();
    mc_net::ports::check_clashes(&parsed.ports, &owned)?;
    mc_net::ports::check_host_and_pick(&mut parsed.ports.clone())?;
    Ok(parsed)
}

/// hosts/resolv.conf for `none`/`host` (the runtime may use these defaults).
pub fn default_files(args: &NetArgs, hostname: &str) -> anyhow::Result<(String, String)> {
    let parsed = parse(args)?;
    let host = ResolvConf::host();
    let mut hosts = files::container_hosts(None, &parsed.add_hosts);
    if args.network == "none" {
        hosts.push_str(&format!("127.0.0.1\t{hostname}\n"));
    }
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_else(|_| {
        host.nameservers
            .iter()
            .map(|n| format!("nameserver {n}\n"))
            .collect()
    });
    Ok((hosts, resolv))
}

fn launcher(global: &Global) -> anyhow::Result<DnsLauncher> {
    let program = std::env::current_exe().context("locating the minicompose binary")?;
    Ok(DnsLauncher {
        program,
        args: vec![
            "--root".into(),
            global.root.clone().into_os_string(),
            "__internal".into(),
            "dns".into(),
        ],
    })
}

/// Overwrite a bind-mounted file in place (truncate + write, no rename).
fn rewrite(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Attach the container to its network and write its hosts/resolv.conf.
/// For `none`/`host` it only writes `--add-host` lines; nothing else.
pub fn setup(global: &Global, args: &NetArgs, ctx: &NetContext) -> anyhow::Result<()> {
    let parsed = validate(global, args)?;
    if !is_bridge(args) {
        let (hosts, _) = default_files(args, &ctx.hostname)?;
        if !parsed.add_hosts.is_empty() {
            rewrite(&ctx.hosts_path, &hosts)?;
        }
        return Ok(());
    }
    let nets = Networks::open(&global.root)?.with_dns_launcher(launcher(global)?);
    let req = AttachRequest {
        container_id: ctx.id.clone(),
        container_name: ctx.name.clone(),
        hostname: Some(ctx.hostname.clone()),
        network: args.network.clone(),
        interface: "eth0".into(),
        aliases: args.network_alias.clone(),
        ip: parsed.ip,
        ports: parsed.ports,
        dns_servers: parsed.dns,
        netns: NetnsRef::from_pid(ctx.pid)?,
    };
    let ep = nets.attach(&req)?;
    let net = nets.get(&args.network)?;
    let own = [ctx.hostname.clone()];
    let written = rewrite(
        &ctx.hosts_path,
        &files::container_hosts(Some((ep.ip, &own)), &parsed.add_hosts),
    )
    .and_then(|_| {
        rewrite(
            &ctx.resolv_path,
            &files::container_resolv_conf(net.gateway, &ResolvConf::host()),
        )
    });
    if let Err(e) = written {
        let _ = nets.detach(&ctx.id);
        return Err(e);
    }
    Ok(())
}

/// Detach the container from every network (idempotent).
pub fn teardown(global: &Global, id: &str) -> anyhow::Result<()> {
    Networks::open(&global.root)?.detach(id)?;
    Ok(())
}

/// `container port ID` lines: `80/tcp -> 0.0.0.0:8080`.
pub fn port_lines(global: &Global, id: &str) -> anyhow::Result<Vec<String>> {
    Ok(Networks::open(&global.root)?
        .ports(id)?
        .iter()
        .map(|p| p.docker_line())
        .collect())
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// Container name or ID
    pub container: String,
    /// Only this port: PRIVATE_PORT[/PROTO]
    pub private_port: Option<String>,
}

/// `container port`: Docker's output (`80/tcp -> 0.0.0.0:8080`, or only
/// `0.0.0.0:8080` when a private port is given).
pub fn port(global: &Global, id: &str, a: PortArgs) -> anyhow::Result<i32> {
    let ports = Networks::open(&global.root)?.ports(id)?;
    let Some(want) = a.private_port else {
        for p in &ports {
            println!("{}", p.docker_line());
        }
        return Ok(0);
    };
    let (num, proto) = want.split_once('/').unwrap_or((want.as_str(), "tcp"));
    let num: u16 = num
        .parse()
        .map_err(|_| user_error(format!("invalid port {want:?}: expected PORT[/tcp|/udp]")))?;
    let found: Vec<&PortMapping> = ports
        .iter()
        .filter(|p| p.container_port == num && p.proto.to_string() == proto)
        .collect();
    if found.is_empty() {
        return Err(user_error(format!(
            "no public port '{num}/{proto}' published for {}",
            a.container
        )));
    }
    for p in found {
        println!(
            "{}:{}",
            p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            p.host_port
        );
    }
    Ok(0)
}
