//! `minicompose network create|ls|inspect|rm`, Docker's output shapes.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::Subcommand;
use mc_net::{CreateRequest, Networks};
use serde_json::json;

use crate::exit::user_error;
use crate::global::Global;

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network
    Create {
        /// Subnet in CIDR form (default: a free 10.89.x.0/24)
        #[arg(long)]
        subnet: Option<String>,
        /// Restrict external access to the network (no egress, no published ports)
        #[arg(long)]
        internal: bool,
        /// Driver (only "bridge")
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Set metadata on the network (KEY=VALUE, repeatable)
        #[arg(long = "label")]
        labels: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(g: &Global, cmd: NetworkCmd) -> anyhow::Result<i32> {
    let nets = Networks::open(&g.root)?;
    match cmd {
        NetworkCmd::Create {
            subnet,
            internal,
            driver,
            labels,
            name,
        } => {
            if driver != "bridge" {
                return Err(user_error(format!(
                    "network driver {driver:?} is not supported: use bridge"
                )));
            }
            let subnet = match subnet {
                Some(s) => Some(s.parse().map_err(|_| {
                    user_error(format!(
                        "invalid --subnet {s:?}: expected an IPv4 network such as 10.20.0.0/24"
                    ))
                })?),
                None => None,
            };
            let mut label_map = BTreeMap::new();
            for l in labels {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                label_map.insert(k.to_string(), v.to_string());
            }
            let net = nets.create(&CreateRequest {
                name,
                subnet,
                internal,
                labels: label_map,
            })?;
            println!("{}", net.id);
            Ok(0)
        }
        NetworkCmd::Ls { quiet } => {
            let list = nets.list()?;
            if quiet {
                for n in &list {
                    println!("{}", &n.id[..12]);
                }
                return Ok(0);
            }
            println!(
                "{:<14}{:<24}{:<10}{:<8}SUBNET",
                "NETWORK ID", "NAME", "DRIVER", "SCOPE"
            );
            for n in &list {
                println!(
                    "{:<14}{:<24}{:<10}{:<8}{}",
                    &n.id[..12],
                    n.name,
                    "bridge",
                    "local",
                    n.subnet
                );
            }
            Ok(0)
        }
        NetworkCmd::Inspect { names } => {
            let endpoints = nets.endpoints()?;
            let mut out = Vec::new();
            for name in &names {
                let n = nets.get(name)?;
                let containers: serde_json::Map<String, serde_json::Value> = endpoints
                    .iter()
                    .filter(|e| e.network == n.name)
                    .map(|e| {
                        (
                            e.container_id.clone(),
                            json!({
                                "Name": e.container_name,
                                "MacAddress": e.mac,
                                "IPv4Address": format!("{}/{}", e.ip, n.subnet.prefix_len()),
                                "IPv6Address": "",
                                "Aliases": e.dns_names,
                                "HostInterface": e.host_veth,
                                "Ports": e.ports.iter().map(|p| p.docker_line()).collect::<Vec<_>>(),
                            }),
                        )
                    })
                    .collect();
                out.push(json!({
                    "Name": n.name,
                    "Id": n.id,
                    "Created": n.created,
                    "Scope": "local",
                    "Driver": "bridge",
                    "EnableIPv6": false,
                    "IPAM": {"Driver": "default", "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}]},
                    "Internal": n.internal,
                    "Attachable": true,
                    "Containers": containers,
                    "Options": {"com.docker.network.bridge.name": n.bridge},
                    "Labels": n.labels,
                }));
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&out).context("rendering JSON")?
            );
            Ok(0)
        }
        NetworkCmd::Rm { names } => {
            // Like docker: try each, report each failure, fail if any did.
            let mut first_err = None;
            for name in &names {
                match nets.remove(name) {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        if names.len() == 1 {
                            return Err(e.into());
                        }
                        eprintln!("minicompose: {e}");
                        first_err.get_or_insert(e);
                    }
                }
            }
            match first_err {
                Some(e) if e.is_user_error() => Ok(1),
                Some(_) => Ok(125),
                None => Ok(0),
            }
        }
    }
}
