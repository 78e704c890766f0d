//! Validate stage, part 2: checks across the whole project that a schema cannot
//! express — references to services, networks and volumes, dependency cycles,
//! container names, image-or-build. Positions come from the merged tree.

use indexmap::IndexMap;

use crate::model::{Project, Service};
use crate::yaml::{Mark, Node};
use crate::Error;

/// The position of `path` in the merged tree (the deepest part that exists).
pub fn mark_at(tree: &Node, path: &[&str]) -> Mark {
    let mut node = tree;
    let mut mark = tree.mark.clone();
    for seg in path {
        let next = match (node.as_map(), node.as_seq()) {
            (Some(m), _) => m.get(*seg).map(|n| (n, n.key_mark.clone())),
            (_, Some(items)) => items
                .iter()
                .find(|i| {
                    i.as_text()
                        .is_some_and(|t| t == *seg || t.starts_with(&format!("{seg}:")))
                        || i.get("source").and_then(Node::as_text) == Some(seg)
                })
                .map(|n| (n, n.mark.clone())),
            _ => None,
        };
        match next {
            Some((n, m)) => {
                node = n;
                mark = m;
            }
            None => break,
        }
    }
    mark
}

pub fn check(p: &Project, tree: &Node) -> Result<(), Error> {
    let fail = |path: &[&str], msg: String| {
        Err(Error::Invalid(format!(
            "{}: {}: {msg}",
            mark_at(tree, path),
            path.join(".")
        )))
    };
    let mut container_names: IndexMap<&str, &str> = IndexMap::new();
    for (name, s) in &p.services {
        let at = |rest: &[&'static str]| -> Vec<&str> {
            let mut v = vec!["services", name.as_str()];
            v.extend_from_slice(rest);
            v
        };
        if s.image.is_none() && s.build.is_none() {
            return fail(&at(&[]), format!("service \"{name}\" has neither an image nor a build context specified; add image: or build:"));
        }
        for dep in s.depends_on.keys() {
            if p.services.contains_key(dep) {
                continue;
            }
            let mut path = at(&["depends_on"]);
            path.push(dep);
            if p.disabled_services.contains_key(dep) {
                return fail(&path, format!(
                    "service \"{dep}\" was pulled in as a dependency of service \"{name}\" but is not enabled by the active profiles; add a common profile to \"{dep}\" and \"{name}\" or enable one of \"{dep}\"'s profiles"
                ));
            }
            return fail(
                &path,
                format!("service \"{name}\" depends on undefined service \"{dep}\""),
            );
        }
        if s.network_mode.is_some()
            && !s.networks.keys().all(|k| k == "default")
            && !s.networks.is_empty()
        {
            return fail(
                &at(&["network_mode"]),
                format!("service \"{name}\" declares mutually exclusive network_mode and networks"),
            );
        }
        if let Some(other) = s
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
        {
            if !p.services.contains_key(other) {
                return fail(
                    &at(&["network_mode"]),
                    format!("service \"{name}\" uses the network of undefined service \"{other}\""),
                );
            }
        }
        for net in s.networks.keys() {
            if net != "default" && !p.networks.contains_key(net) {
                let mut path = at(&["networks"]);
                path.push(net);
                return fail(&path, format!("service \"{name}\" refers to undefined network \"{net}\"; declare it under the top-level networks:"));
            }
        }
        for v in &s.volumes {
            if v.kind == "volume" && !v.source.is_empty() && !p.volumes.contains_key(&v.source) {
                let mut path = at(&["volumes"]);
                path.push(&v.source);
                return fail(&path, format!("service \"{name}\" refers to undefined volume \"{}\"; declare it under the top-level volumes:", v.source));
            }
        }
        for from in &s.volumes_from {
            let src = from.split(':').next().unwrap_or_default();
            if !from.starts_with("container:") && !p.services.contains_key(src) {
                return fail(
                    &at(&["volumes_from"]),
                    format!("service \"{name}\" mounts volumes from undefined service \"{src}\""),
                );
            }
        }
        if let Some(cn) = &s.container_name {
            if s.replicas() > 1 {
                return fail(&at(&["container_name"]), format!(
                    "service \"{name}\" sets container_name \"{cn}\" but runs {} replicas; container names must be unique, remove container_name or scale to 1",
                    s.replicas()
                ));
            }
            if let Some(other) = container_names.insert(cn, name) {
                return fail(
                    &at(&["container_name"]),
                    format!(
                        "container name \"{cn}\" is used by services \"{other}\" and \"{name}\""
                    ),
                );
            }
        }
    }
    if let Some(cycle) = find_cycle(&p.services) {
        let first = cycle[0].clone();
        return Err(Error::Invalid(format!(
            "{}: services.{first}.depends_on: dependency cycle detected: {}",
            mark_at(tree, &["services", &first, "depends_on"]),
            cycle.join(" -> ")
        )));
    }
    Ok(())
}

/// A dependency cycle (through depends_on, `network_mode: service:` and volumes_from), if any.
fn find_cycle(services: &IndexMap<String, Service>) -> Option<Vec<String>> {
    fn deps(s: &Service) -> Vec<String> {
        let mut d: Vec<String> = s.depends_on.keys().cloned().collect();
        if let Some(o) = s
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
        {
            d.push(o.to_string());
        }
        for v in &s.volumes_from {
            if !v.starts_with("container:") {
                d.push(v.split(':').next().unwrap_or_default().to_string());
            }
        }
        d
    }
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Active,
        Done,
    }
    let mut state: IndexMap<&str, State> =
        services.keys().map(|k| (k.as_str(), State::New)).collect();
    // Iterative DFS so that a long chain cannot overflow the stack.
    for start in services.keys() {
        if state[start.as_str()] != State::New {
            continue;
        }
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), deps(&services[start]))];
        state[start.as_str()] = State::Active;
        while let Some((node, pending)) = stack.last_mut() {
            match pending.pop() {
                Some(next) => match state.get(next.as_str()).copied() {
                    Some(State::Active) => {
                        let mut cycle: Vec<String> = stack
                            .iter()
                            .map(|(n, _)| n.clone())
                            .skip_while(|n| *n != next)
                            .collect();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    Some(State::New) => {
                        let d = deps(&services[&next]);
                        if let Some((k, _)) = services.get_key_value(&next) {
                            state[k.as_str()] = State::Active;
                        }
                        stack.push((next, d));
                    }
                    _ => {}
                },
                None => {
                    let done = node.clone();
                    if let Some((k, _)) = services.get_key_value(&done) {
                        state[k.as_str()] = State::Done;
                    }
                    stack.pop();
                }
            }
        }
    }
    None
}
