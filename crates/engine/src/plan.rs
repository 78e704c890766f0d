//! What to do: services in dependency order, and per service which
//! containers to keep, start, recreate, create or remove. Pure.

use indexmap::IndexMap;

use crate::Error;

/// Services in start order (dependencies first; ties in name order).
/// `depends_on` entries naming a missing service are an error unless
/// `required: false` (then ignored, as compose does).
pub fn start_order(services: &IndexMap<String, mc_compose::Service>) -> Result<Vec<String>, Error> {
    let mut names: Vec<&String> = services.keys().collect();
    names.sort();
    let mut order: Vec<String> = Vec::new();
    let mut state: IndexMap<&str, u8> = IndexMap::new(); // 1 visiting, 2 done
    fn visit<'a>(
        name: &'a str,
        services: &'a IndexMap<String, mc_compose::Service>,
        state: &mut IndexMap<&'a str, u8>,
        order: &mut Vec<String>,
        path: &mut Vec<&'a str>,
    ) -> Result<(), Error> {
        match state.get(name) {
            Some(2) => return Ok(()),
            Some(_) => {
                path.push(name);
                return Err(Error::Invalid(format!(
                    "dependency cycle between services: {}: remove one of these depends_on entries",
                    path.join(" -> ")
                )));
            }
            None => {}
        }
        state.insert(name, 1);
        path.push(name);
        let svc = &services[name];
        let mut deps: Vec<(&String, &mc_compose::Dependency)> = svc.depends_on.iter().collect();
        deps.sort_by(|a, b| a.0.cmp(b.0));
        for (dep, d) in deps {
            match services.get_key_value(dep.as_str()) {
                Some((k, _)) => visit(k, services, state, order, path)?,
                None if !d.required => {}
                None => {
                    return Err(Error::Invalid(format!(
                        "service {name} depends on undefined service {dep}: define it, enable its profile, or mark the dependency `required: false`"
                    )))
                }
            }
        }
        path.pop();
        state.insert(name, 2);
        order.push(name.to_string());
        Ok(())
    }
    for n in names {
        visit(n, services, &mut state, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

/// Dependency level of each service: 0 without dependencies, else one more
/// than its deepest dependency. Services of one level can start (or stop)
/// together. Call after [`start_order`] succeeded (no cycles).
pub fn levels(services: &IndexMap<String, mc_compose::Service>) -> IndexMap<String, usize> {
    let mut out: IndexMap<String, usize> = IndexMap::new();
    for name in start_order(services).unwrap_or_default() {
        let lvl = services[&name]
            .depends_on
            .keys()
            .filter_map(|d| out.get(d))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        out.insert(name, lvl);
    }
    out
}

/// The services to act on: the selected ones plus (unless `no_deps`) what
/// they depend on, transitively. Empty selection = all.
pub fn selection(
    services: &IndexMap<String, mc_compose::Service>,
    selected: &[String],
    no_deps: bool,
) -> Result<Vec<String>, Error> {
    for s in selected {
        if !services.contains_key(s) {
            return Err(Error::Invalid(format!("no such service: {s}")));
        }
    }
    let order = start_order(services)?;
    if selected.is_empty() {
        return Ok(order);
    }
    let mut want: Vec<String> = selected.to_vec();
    if !no_deps {
        let mut i = 0;
        while i < want.len() {
            let deps: Vec<String> = services[&want[i]]
                .depends_on
                .keys()
                .filter(|d| services.contains_key(*d))
                .cloned()
                .collect();
            for d in deps {
                if !want.contains(&d) {
                    want.push(d);
                }
            }
            i += 1;
        }
    }
    Ok(order.into_iter().filter(|s| want.contains(s)).collect())
}

/// A container of a service found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub id: String,
    pub number: u32,
    pub hash: String,
    pub image_id: String,
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Up to date and running.
    Keep {
        id: String,
    },
    /// Up to date but stopped.
    Start {
        id: String,
    },
    /// Out of date: remove and create anew with the same number.
    Recreate {
        id: String,
    },
    Create,
    /// Beyond the wanted scale.
    Remove {
        id: String,
    },
}

/// How to treat existing containers (`--force-recreate`, `--no-recreate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecreatePolicy {
    #[default]
    Diverged,
    Force,
    Never,
}

/// Per container number, the action that brings the service to `want`
/// replicas of `hash`/`image_id`. Removals come first (highest numbers,
/// as compose does); numbers of new containers fill the gaps from 1.
pub fn reconcile(
    existing: &[Existing],
    want: u32,
    hash: &str,
    image_id: &str,
    policy: RecreatePolicy,
) -> Vec<(u32, Action)> {
    let mut sorted: Vec<&Existing> = existing.iter().collect();
    sorted.sort_by_key(|e| e.number);
    let mut out = Vec::new();
    let keep_n = (want as usize).min(sorted.len());
    for e in sorted.iter().skip(keep_n).rev() {
        out.push((e.number, Action::Remove { id: e.id.clone() }));
    }
    let mut used: Vec<u32> = Vec::new();
    for e in sorted.iter().take(keep_n) {
        used.push(e.number);
        let diverged = e.hash != hash || e.image_id != image_id;
        let act = match policy {
            RecreatePolicy::Force => Action::Recreate { id: e.id.clone() },
            RecreatePolicy::Diverged if diverged => Action::Recreate { id: e.id.clone() },
            _ if e.running => Action::Keep { id: e.id.clone() },
            _ => Action::Start { id: e.id.clone() },
        };
        out.push((e.number, act));
    }
    let mut n = 1;
    while used.len() < want as usize {
        if !used.contains(&n) {
            used.push(n);
            out.push((n, Action::Create));
        }
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(deps: &[(&str, bool)]) -> mc_compose::Service {
        let mut s = mc_compose::Service::default();
        for (d, req) in deps {
            s.depends_on.insert(
                d.to_string(),
                mc_compose::Dependency {
                    condition: "service_started".into(),
                    restart: false,
                    required: *req,
                },
            );
        }
        s
    }

    #[test]
    fn order_and_cycles() {
        let mut m = IndexMap::new();
        m.insert("web".to_string(), svc(&[("redis", true), ("ghost", false)]));
        m.insert("redis".to_string(), svc(&[]));
        m.insert("a".to_string(), svc(&[("web", true)]));
        assert_eq!(start_order(&m).unwrap(), vec!["redis", "web", "a"]);
        let l = levels(&m);
        assert_eq!((l["redis"], l["web"], l["a"]), (0, 1, 2));
        assert_eq!(
            selection(&m, &["web".into()], false).unwrap(),
            vec!["redis", "web"]
        );
        assert_eq!(selection(&m, &["web".into()], true).unwrap(), vec!["web"]);
        assert!(selection(&m, &["nope".into()], false)
            .unwrap_err()
            .is_user_error());
        m.insert("redis".to_string(), svc(&[("a", true)]));
        let e = start_order(&m).unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        let mut m2 = IndexMap::new();
        m2.insert("x".to_string(), svc(&[("y", true)]));
        assert!(start_order(&m2)
            .unwrap_err()
            .to_string()
            .contains("undefined service y"));
    }

    fn ex(id: &str, n: u32, hash: &str, running: bool) -> Existing {
        Existing {
            id: id.into(),
            number: n,
            hash: hash.into(),
            image_id: "i".into(),
            running,
        }
    }

    #[test]
    fn reconcile_scale_and_changes() {
        let e = vec![
            ex("a", 1, "h", true),
            ex("b", 2, "h", false),
            ex("c", 3, "old", true),
        ];
        let acts = reconcile(&e, 2, "h", "i", RecreatePolicy::Diverged);
        assert_eq!(
            acts,
            vec![
                (3, Action::Remove { id: "c".into() }),
                (1, Action::Keep { id: "a".into() }),
                (2, Action::Start { id: "b".into() })
            ]
        );
        let acts = reconcile(&e[..1], 3, "h2", "i", RecreatePolicy::Diverged);
        assert_eq!(
            acts,
            vec![
                (1, Action::Recreate { id: "a".into() }),
                (2, Action::Create),
                (3, Action::Create)
            ]
        );
        let acts = reconcile(&e[..1], 1, "h2", "i", RecreatePolicy::Never);
        assert_eq!(acts, vec![(1, Action::Keep { id: "a".into() })]);
        let acts = reconcile(&e[..1], 1, "h", "i", RecreatePolicy::Force);
        assert_eq!(acts, vec![(1, Action::Recreate { id: "a".into() })]);
        let acts = reconcile(
            &[ex("b", 2, "h", true)],
            2,
            "h",
            "i",
            RecreatePolicy::Diverged,
        );
        assert_eq!(
            acts,
            vec![(2, Action::Keep { id: "b".into() }), (1, Action::Create)]
        );
    }
}
