//! The pipeline: read → parse → interpolate → schema-check each file, resolve its
//! `include` and `extends`, merge the files, then normalize and validate.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::extends::{self, FileLoader};
use crate::interpolate::{interpolate_tree, Env};
use crate::lookup::Source;
use crate::merge;
use crate::normalize::resolve_path;
use crate::path::Path;
use crate::yaml::{self, Node, Value};
use crate::{schema, Error};

/// Bytes read from one compose file at most (a compose file is small; this bounds memory).
const MAX_FILE_BYTES: u64 = 16 << 20;

pub struct Loader<'a> {
    pub env: &'a Env,
    pub interpolate: bool,
    pub cwd: PathBuf,
    pub stdin: Option<String>,
    pub unset: Vec<String>,
    pub version_files: Vec<String>,
    /// Files being loaded (include/extends chains), to refuse cycles.
    loading: Vec<PathBuf>,
    cache: HashMap<PathBuf, Node>,
}

impl<'a> Loader<'a> {
    pub fn new(env: &'a Env, interpolate: bool, cwd: PathBuf, stdin: Option<String>) -> Loader<'a> {
        Loader {
            env,
            interpolate,
            cwd,
            stdin,
            unset: Vec::new(),
            version_files: Vec::new(),
            loading: Vec::new(),
            cache: HashMap::new(),
        }
    }

    /// How a file is named in messages: relative to the working directory when inside it.
    fn display_name(&self, p: &FsPath) -> Arc<str> {
        let shown = p
            .strip_prefix(&self.cwd)
            .map(FsPath::to_path_buf)
            .unwrap_or_else(|_| p.to_path_buf());
        Arc::from(shown.to_string_lossy().as_ref())
    }

    fn read(&mut self, src: &Source) -> Result<(Arc<str>, String, PathBuf), Error> {
        match src {
            Source::Stdin => {
                let text = match self.stdin.take() {
                    Some(t) => t,
                    None => {
                        use std::io::Read;
                        let mut t = String::new();
                        std::io::stdin()
                            .take(MAX_FILE_BYTES)
                            .read_to_string(&mut t)
                            .map_err(|e| {
                                Error::Invalid(format!(
                                    "cannot read the compose file from stdin: {e}"
                                ))
                            })?;
                        t
                    }
                };
                Ok((Arc::from("(stdin)"), text, self.cwd.join("(stdin)")))
            }
            Source::Path(p) => {
                let name = self.display_name(p);
                tracing::info!(target: "explain::compose", file = %p.display(), "reading compose file");
                let meta = std::fs::metadata(p).map_err(|e| {
                    Error::Invalid(format!("{name}: cannot read compose file: {e}"))
                })?;
                if !meta.is_file() {
                    return Err(Error::Invalid(format!("{name}: not a regular file")));
                }
                if meta.len() > MAX_FILE_BYTES {
                    return Err(Error::Invalid(format!(
                        "{name}: compose file is larger than {MAX_FILE_BYTES} bytes"
                    )));
                }
                let bytes = std::fs::read(p).map_err(|e| {
                    Error::Invalid(format!("{name}: cannot read compose file: {e}"))
                })?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    Error::Invalid(format!("{name}: compose file is not valid UTF-8"))
                })?;
                Ok((name, text, p.clone()))
            }
        }
    }

    /// Parse, interpolate and schema-check one file's text (all its YAML documents merged).
    pub fn parse_text(&mut self, name: &Arc<str>, text: &str) -> Result<Node, Error> {
        let docs = yaml::parse(name, text)?;
        let mut doc: Option<Node> = None;
        for d in docs {
            doc = Some(match doc {
                None => d,
                Some(base) => merge::merge_documents(base, d),
            });
        }
        let doc = match doc {
            Some(d) if !d.is_null() => d,
            _ => return Err(Error::Invalid(format!("{name}: empty compose file"))),
        };
        if doc.as_map().is_none() {
            return Err(Error::Invalid(format!(
                "{}: the top level must be a mapping, not {}",
                doc.mark,
                doc.kind()
            )));
        }
        let mut doc = doc;
        if self.interpolate {
            interpolate_tree(&mut doc, self.env, &mut Path::root(), &mut self.unset)?;
        }
        schema::validate(&doc)?;
        if doc.get("version").is_some() {
            self.version_files.push(name.to_string());
        }
        Ok(doc)
    }

    /// A whole file: parsed, its includes merged in and its extends resolved.
    pub fn load_file(&mut self, src: &Source) -> Result<Node, Error> {
        let (name, text, path) = self.read(src)?;
        if self.loading.contains(&path) {
            let chain: Vec<String> = self
                .loading
                .iter()
                .chain(std::iter::once(&path))
                .map(|p| p.display().to_string())
                .collect();
            return Err(Error::Invalid(format!(
                "{name}: include cycle: {}",
                chain.join(" -> ")
            )));
        }
        self.loading.push(path.clone());
        let result = self.load_parsed(&name, &text, &path);
        self.loading.pop();
        result
    }

    fn load_parsed(&mut self, name: &Arc<str>, text: &str, path: &FsPath) -> Result<Node, Error> {
        let mut doc = self.parse_text(name, text)?;
        extends::resolve_all(&mut doc, path, self)?;
        if let Some(includes) = doc.as_map_mut().and_then(|m| m.shift_remove("include")) {
            let dir = path.parent().unwrap_or(FsPath::new("/")).to_path_buf();
            for (i, entry) in includes.as_seq().unwrap_or_default().iter().enumerate() {
                let included = self.load_include(entry, &dir, i)?;
                merge_included(&mut doc, included, entry, name)?;
            }
        }
        Ok(doc)
    }

    fn load_include(&mut self, entry: &Node, dir: &FsPath, i: usize) -> Result<Node, Error> {
        let (paths, project_dir, env_files): (Vec<String>, Option<String>, Vec<String>) =
            match &entry.value {
                Value::Scalar { text, .. } => (vec![text.clone()], None, Vec::new()),
                Value::Map(m) => {
                    let list = |k: &str| -> Vec<String> {
                        match m.get(k) {
                            Some(n) => match n.as_seq() {
                                Some(items) => items
                                    .iter()
                                    .filter_map(Node::as_text)
                                    .map(str::to_string)
                                    .collect(),
                                None => {
                                    n.as_text().map(|s| vec![s.to_string()]).unwrap_or_default()
                                }
                            },
                            None => Vec::new(),
                        }
                    };
                    (
                        list("path"),
                        m.get("project_directory")
                            .and_then(Node::as_text)
                            .map(str::to_string),
                        list("env_file"),
                    )
                }
                _ => (Vec::new(), None, Vec::new()),
            };
        if paths.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: include[{i}]: needs a path",
                entry.mark
            )));
        }
        let files: Vec<PathBuf> = paths.iter().map(|p| resolve_path(dir, p)).collect();
        let sub_dir = match &project_dir {
            Some(d) => resolve_path(dir, d),
            None => files[0].parent().unwrap_or(FsPath::new("/")).to_path_buf(),
        };
        // The included project's own env files add defaults; our variables win.
        let mut env = self.env.clone();
        for f in &env_files {
            let f = resolve_path(dir, f);
            let text = std::fs::read_to_string(&f).map_err(|e| {
                Error::Invalid(format!(
                    "{}: include[{i}].env_file: cannot read {}: {e}",
                    entry.mark,
                    f.display()
                ))
            })?;
            let parsed = crate::dotenv::parse(&text, self.env)
                .map_err(|e| Error::Invalid(format!("{}:{e}", f.display())))?;
            for (k, v) in parsed {
                if let (Some(v), false) = (v, self.env.contains_key(&k)) {
                    env.insert(k, v);
                }
            }
        }
        let mut sub = Loader::new(&env, self.interpolate, self.cwd.clone(), None);
        sub.loading = self.loading.clone();
        let mut merged: Option<Node> = None;
        for f in &files {
            if !f.is_file() {
                return Err(Error::Invalid(format!(
                    "{}: include[{i}]: {} not found",
                    entry.mark,
                    f.display()
                )));
            }
            let d = sub.load_file(&Source::Path(f.clone()))?;
            merged = Some(match merged {
                None => d,
                Some(b) => merge::merge_documents(b, d),
            });
        }
        self.unset.append(&mut sub.unset);
        self.version_files.append(&mut sub.version_files);
        let mut doc =
            merged.unwrap_or_else(|| Node::new(Value::Map(IndexMap::new()), entry.mark.clone()));
        if let Some(services) = doc
            .as_map_mut()
            .and_then(|m| m.get_mut("services"))
            .and_then(Node::as_map_mut)
        {
            for s in services.values_mut() {
                extends::absolutize_service(s, &sub_dir);
            }
        }
        Ok(doc)
    }
}

impl FileLoader for Loader<'_> {
    fn load_doc(&mut self, path: &FsPath, at: &Node) -> Result<Node, Error> {
        if let Some(d) = self.cache.get(path) {
            return Ok(d.clone());
        }
        if !path.is_file() {
            return Err(Error::Invalid(format!(
                "{}: extends: file {} not found",
                at.mark,
                path.display()
            )));
        }
        let (name, text, _) = self.read(&Source::Path(path.to_path_buf()))?;
        let doc = self.parse_text(&name, &text)?;
        self.cache.insert(path.to_path_buf(), doc.clone());
        Ok(doc)
    }
}

/// Add an included project's resources; the same name defined on both sides is an error.
fn merge_included(doc: &mut Node, included: Node, entry: &Node, file: &str) -> Result<(), Error> {
    let Value::Map(inc) = included.value else {
        return Ok(());
    };
    let Some(top) = doc.as_map_mut() else {
        return Ok(());
    };
    for section in ["services", "networks", "volumes", "secrets", "configs"] {
        let Some(Value::Map(items)) = inc.get(section).map(|n| n.value.clone()) else {
            continue;
        };
        let target = top
            .entry(section.to_string())
            .or_insert_with(|| Node::new(Value::Map(IndexMap::new()), entry.mark.clone()));
        if target.is_null() {
            *target = Node::new(Value::Map(IndexMap::new()), entry.mark.clone());
        }
        let Some(tm) = target.as_map_mut() else {
            continue;
        };
        for (k, v) in items {
            if let Some(existing) = tm.get(&k) {
                if yaml::to_json(existing) != yaml::to_json(&v) {
                    return Err(Error::Invalid(format!(
                        "{}: {section}.{k} conflicts with the imported resource from include in {file}",
                        existing.key_mark
                    )));
                }
                continue;
            }
            tm.insert(k, v);
        }
    }
    Ok(())
}
