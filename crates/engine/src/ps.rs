//! What `ps` shows, as data: docker compose's columns and JSON fields, and
//! the human forms of times and statuses ("Up 5 seconds (healthy)").

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::ops::Member;
use crate::Engine;

/// One published port, docker compose's `Publishers` entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Publisher {
    #[serde(rename = "URL")]
    pub url: String,
    #[serde(rename = "TargetPort")]
    pub target_port: u16,
    #[serde(rename = "PublishedPort")]
    pub published_port: u16,
    #[serde(rename = "Protocol")]
    pub protocol: String,
}

/// One line of `ps`, with docker compose's JSON field names.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Names")]
    pub names: String,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Command")]
    pub command: String,
    #[serde(rename = "Project")]
    pub project: String,
    #[serde(rename = "Service")]
    pub service: String,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "RunningFor")]
    pub running_for: String,
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "Health")]
    pub health: String,
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    #[serde(rename = "Ports")]
    pub ports: String,
    #[serde(rename = "Publishers")]
    pub publishers: Vec<Publisher>,
    #[serde(rename = "Networks")]
    pub networks: String,
    #[serde(rename = "Labels")]
    pub labels: String,
}

/// Docker's "About a minute", "5 seconds", "2 hours".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if s < 120 {
        "About a minute".into()
    } else if s < 3600 {
        format!("{} minutes", s / 60)
    } else if s < 7200 {
        "About an hour".into()
    } else if s < 48 * 3600 {
        format!("{} hours", s / 3600)
    } else if s < 14 * 86400 {
        format!("{} days", s / 86400)
    } else {
        format!("{} weeks", s / (7 * 86400))
    }
}

fn since(rfc: &str) -> Option<Duration> {
    let t = humantime::parse_rfc3339_weak(rfc.get(..19)?).ok()?;
    SystemTime::now().duration_since(t).ok()
}

/// `Up 5 seconds (healthy)`, `Exited (0) 3 seconds ago`, `Created`.
pub fn status_text(state: &mc_runtime::State, health: &str) -> String {
    match state.status {
        mc_runtime::Status::Created => "Created".into(),
        mc_runtime::Status::Running => {
            let up = since(&state.started_at)
                .map(human_duration)
                .unwrap_or_else(|| "Less than a second".into());
            let h = match health {
                "" => String::new(),
                "starting" => " (health: starting)".into(),
                other => format!(" ({other})"),
            };
            format!("Up {up}{h}")
        }
        mc_runtime::Status::Exited => {
            let ago = since(&state.finished_at)
                .map(human_duration)
                .unwrap_or_else(|| "Less than a second".into());
            format!("Exited ({}) {ago} ago", state.exit_code)
        }
    }
}

/// The command as docker shows it: quoted, shell-joined.
pub fn command_text(args: &[String]) -> String {
    format!("\"{}\"", args.join(" "))
}

impl Engine {
    pub fn summarize(&self, project: &str, members: &[Member]) -> Vec<Summary> {
        let nets = self.net.networks().ok();
        let endpoints = nets
            .as_ref()
            .and_then(|n| n.endpoints().ok())
            .unwrap_or_default();
        members
            .iter()
            .map(|m| {
                let running = m.running();
                let health = if running {
                    self.paths
                        .read_health(project, m.id())
                        .filter(|h| h.pid_start == m.state.pid_start)
                        .map(|h| h.status)
                        .unwrap_or_else(|| {
                            let has = self
                                .paths
                                .read_record(project, m.id())
                                .and_then(|r| r.healthcheck)
                                .is_some();
                            if has {
                                "starting".into()
                            } else {
                                String::new()
                            }
                        })
                } else {
                    String::new()
                };
                let mine: Vec<&mc_net::Endpoint> = endpoints
                    .iter()
                    .filter(|e| e.container_id == m.id())
                    .collect();
                let mut publishers: Vec<Publisher> = Vec::new();
                let mut ports: Vec<String> = Vec::new();
                if running {
                    for p in mine.iter().flat_map(|e| e.ports.iter()) {
                        let ip = p
                            .host_ip
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "0.0.0.0".into());
                        ports.push(format!(
                            "{ip}:{}->{}/{}",
                            p.host_port, p.container_port, p.proto
                        ));
                        publishers.push(Publisher {
                            url: ip,
                            target_port: p.container_port,
                            published_port: p.host_port,
                            protocol: p.proto.to_string(),
                        });
                    }
                }
                if running {
                    let exposed = self
                        .paths
                        .read_record(project, m.id())
                        .map(|r| r.exposed)
                        .unwrap_or_default();
                    for e in exposed {
                        let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
                        let Ok(port) = port.parse::<u16>() else {
                            continue;
                        };
                        if publishers
                            .iter()
                            .any(|p| p.target_port == port && p.protocol == proto)
                        {
                            continue;
                        }
                        ports.push(format!("{port}/{proto}"));
                        publishers.push(Publisher {
                            url: String::new(),
                            target_port: port,
                            published_port: 0,
                            protocol: proto.to_string(),
                        });
                    }
                }
                let network_names: Vec<String> = match self.paths.read_record(project, m.id()) {
                    Some(r) => r.networks.iter().map(|n| n.network.clone()).collect(),
                    None => vec![m.rec.spec.network.clone()],
                };
                let created = since(&m.rec.spec.created)
                    .map(|d| format!("{} ago", human_duration(d)))
                    .unwrap_or_default();
                Summary {
                    id: m.id().to_string(),
                    name: m.name().to_string(),
                    names: m.name().to_string(),
                    image: m.rec.spec.image.clone(),
                    command: command_text(&m.rec.spec.args),
                    project: project.to_string(),
                    service: m.service.clone(),
                    created_at: m.rec.spec.created.clone(),
                    running_for: created,
                    state: match m.state.status {
                        mc_runtime::Status::Created => "created",
                        mc_runtime::Status::Running => "running",
                        mc_runtime::Status::Exited => "exited",
                    }
                    .into(),
                    status: status_text(&m.state, &health),
                    health,
                    exit_code: m.state.exit_code,
                    ports: ports.join(", "),
                    publishers,
                    networks: network_names.join(","),
                    labels: m
                        .rec
                        .spec
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(5000)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }

    #[test]
    fn statuses() {
        let mut s = mc_runtime::State::default();
        assert_eq!(status_text(&s, ""), "Created");
        s.status = mc_runtime::Status::Exited;
        s.exit_code = 3;
        s.finished_at = mc_runtime::state::now_rfc3339();
        assert!(status_text(&s, "").starts_with("Exited (3) "));
        s.status = mc_runtime::Status::Running;
        s.started_at = mc_runtime::state::now_rfc3339();
        assert!(status_text(&s, "healthy").ends_with("(healthy)"));
        assert!(status_text(&s, "starting").ends_with("(health: starting)"));
        assert_eq!(
            command_text(&["redis-server".into(), "--x".into()]),
            "\"redis-server --x\""
        );
    }
}
