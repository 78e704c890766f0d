//! `extends` (same file or another file) and `include`: both pull service
//! definitions from elsewhere before the files are merged. Relative paths in a
//! definition taken from another directory are made absolute first, so they keep
//! pointing where their author meant.

use std::path::{Path as FsPath, PathBuf};

use indexmap::IndexMap;

use crate::merge;
use crate::normalize::resolve_path;
use crate::yaml::{Node, Value};
use crate::Error;

/// Loads (parse + interpolate + schema-check) a file by path; supplied by the loader.
pub trait FileLoader {
    fn load_doc(&mut self, path: &FsPath, at: &Node) -> Result<Node, Error>;
}

/// Resolve every `extends` of a document whose relative paths are based at `dir`.
pub fn resolve_all(
    doc: &mut Node,
    file: &FsPath,
    loader: &mut dyn FileLoader,
) -> Result<(), Error> {
    let Some(services) = doc.get("services").and_then(Node::as_map).cloned() else {
        return Ok(());
    };
    let mut resolved = IndexMap::new();
    for name in services.keys() {
        let mut stack = Vec::new();
        let node = resolve_service(&services, name, file, loader, &mut stack)?;
        resolved.insert(name.clone(), node);
    }
    if let Some(m) = doc
        .as_map_mut()
        .and_then(|m| m.get_mut("services"))
        .and_then(Node::as_map_mut)
    {
        for (k, v) in resolved {
            m.insert(k, v);
        }
    }
    Ok(())
}

fn resolve_service(
    services: &IndexMap<String, Node>,
    name: &str,
    file: &FsPath,
    loader: &mut dyn FileLoader,
    stack: &mut Vec<(PathBuf, String)>,
) -> Result<Node, Error> {
    let key = (file.to_path_buf(), name.to_string());
    let Some(node) = services.get(name) else {
        return Err(Error::Invalid(format!(
            "{}: service \"{name}\" not found",
            file.display()
        )));
    };
    if stack.contains(&key) {
        let chain: Vec<String> = stack
            .iter()
            .chain(std::iter::once(&key))
            .map(|(_, s)| s.clone())
            .collect();
        return Err(Error::Invalid(format!(
            "{}: services.{name}.extends: circular reference: {}",
            node.mark,
            chain.join(" -> ")
        )));
    }
    let Some(ext) = node.get("extends") else {
        return Ok(node.clone());
    };
    stack.push(key);
    let (base_name, base_file) = match &ext.value {
        Value::Scalar { text, .. } => (text.clone(), None),
        Value::Map(m) => {
            let s = m.get("service").and_then(Node::as_text).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: services.{name}.extends: needs a \"service\"",
                    ext.mark
                ))
            })?;
            (
                s.to_string(),
                m.get("file").and_then(Node::as_text).map(str::to_string),
            )
        }
        _ => {
            return Err(Error::Invalid(format!(
                "{}: services.{name}.extends: must be a service name or a mapping",
                ext.mark
            )))
        }
    };
    let dir = file.parent().unwrap_or(FsPath::new("/")).to_path_buf();
    let mut base = match base_file {
        None => {
            if !services.contains_key(&base_name) {
                return Err(Error::Invalid(format!(
                    "{}: services.{name}.extends: service \"{base_name}\" not found in {}",
                    ext.mark,
                    file.display()
                )));
            }
            resolve_service(services, &base_name, file, loader, stack)?
        }
        Some(f) => {
            let other = resolve_path(&dir, &f);
            let doc = loader.load_doc(&other, ext)?;
            let other_services = doc
                .get("services")
                .and_then(Node::as_map)
                .cloned()
                .unwrap_or_default();
            if !other_services.contains_key(&base_name) {
                return Err(Error::Invalid(format!(
                    "{}: services.{name}.extends: service \"{base_name}\" not found in {}",
                    ext.mark,
                    other.display()
                )));
            }
            let mut b = resolve_service(&other_services, &base_name, &other, loader, stack)?;
            let other_dir = other.parent().unwrap_or(FsPath::new("/")).to_path_buf();
            if other_dir != dir {
                absolutize_service(&mut b, &other_dir);
            }
            b
        }
    };
    stack.pop();
    if let Some(m) = base.as_map_mut() {
        // A base's dependencies are not inherited (compose-spec).
        m.shift_remove("extends");
        m.shift_remove("depends_on");
    }
    let mut child = node.clone();
    if let Some(m) = child.as_map_mut() {
        m.shift_remove("extends");
    }
    // Merge as if the base were an earlier file defining the same service.
    let wrap = |n: Node| {
        let mark = n.mark.clone();
        let mut services = IndexMap::new();
        services.insert(name.to_string(), n);
        let mut top = IndexMap::new();
        top.insert(
            "services".to_string(),
            Node::new(Value::Map(services), mark.clone()),
        );
        Node::new(Value::Map(top), mark)
    };
    let merged = merge::merge_documents(wrap(base), wrap(child));
    Ok(merged
        .get("services")
        .and_then(|s| s.get(name))
        .cloned()
        .unwrap_or_else(|| node.clone()))
}

/// Make the relative paths of one service definition absolute against `dir`.
pub fn absolutize_service(n: &mut Node, dir: &FsPath) {
    let abs = |s: &str| resolve_path(dir, s).to_string_lossy().into_owned();
    let Some(m) = n.as_map_mut() else { return };
    if let Some(b) = m.get_mut("build") {
        match &mut b.value {
            Value::Scalar { text, .. } if !text.contains("://") => *text = abs(text),
            Value::Map(bm) => match bm.get_mut("context") {
                Some(c) => {
                    if let Value::Scalar { text, .. } = &mut c.value {
                        if !text.contains("://") {
                            *text = abs(text);
                        }
                    }
                }
                None => {
                    let mark = b.mark.clone();
                    if let Some(bm) = b.as_map_mut() {
                        bm.insert("context".into(), Node::string(abs("."), mark));
                    }
                }
            },
            _ => {}
        }
    }
    if let Some(e) = m.get_mut("env_file") {
        for_each_item(e, &mut |item| match &mut item.value {
            Value::Scalar { text, .. } => *text = abs(text),
            Value::Map(em) => {
                if let Some(Value::Scalar { text, .. }) = em.get_mut("path").map(|p| &mut p.value) {
                    *text = abs(text);
                }
            }
            _ => {}
        });
    }
    if let Some(Value::Seq(items)) = m.get_mut("volumes").map(|v| &mut v.value) {
        for item in items {
            match &mut item.value {
                Value::Scalar { text, .. } if text.starts_with('.') || text.starts_with('~') => {
                    if let Some((src, rest)) = text.split_once(':') {
                        *text = format!("{}:{rest}", abs(src));
                    }
                }
                Value::Map(vm) => {
                    let is_bind = vm.get("type").and_then(Node::as_text) == Some("bind");
                    if let (true, Some(Value::Scalar { text, .. })) =
                        (is_bind, vm.get_mut("source").map(|s| &mut s.value))
                    {
                        *text = abs(text);
                    }
                }
                _ => {}
            }
        }
    }
}

fn for_each_item(n: &mut Node, f: &mut dyn FnMut(&mut Node)) {
    match &mut n.value {
        Value::Seq(items) => items.iter_mut().for_each(f),
        _ => f(n),
    }
}
