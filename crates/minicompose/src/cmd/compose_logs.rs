//! Reading containers' logs (json-file lines in `<container>/log.json`)
//! incrementally, for `logs` and the foreground `up`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;

use mc_engine::logs::Prefixer;

/// One container's log being followed.
pub struct Tail {
    pub name: String,
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    pub fn new(name: &str, dir: &std::path::Path, from_end: bool) -> Tail {
        let path = mc_runtime::logs::log_path(dir);
        let offset = if from_end {
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        Tail {
            name: name.to_string(),
            path,
            offset,
            partial: Vec::new(),
        }
    }

    /// New complete entries since the last call.
    pub fn read(&mut self) -> Vec<mc_runtime::logs::Entry> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // truncated or replaced
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            if let Ok(e) = serde_json::from_slice(&line) {
                out.push(e);
            }
        }
        out
    }
}

/// A set of followed containers printed through one prefixer.
pub struct Multiplexer {
    pub tails: HashMap<String, Tail>,
    pub prefixer: Prefixer,
}

impl Multiplexer {
    pub fn new(prefixer: Prefixer) -> Multiplexer {
        Multiplexer {
            tails: HashMap::new(),
            prefixer,
        }
    }

    pub fn add(&mut self, id: &str, name: &str, dir: &std::path::Path, from_end: bool) {
        if !self.tails.contains_key(id) {
            self.prefixer.add(name);
            self.tails
                .insert(id.to_string(), Tail::new(name, dir, from_end));
        }
    }

    /// Print what is new, in time order across containers, with at most
    /// the last `tail` lines per container when given.
    pub fn pump(&mut self, tail: Option<usize>) -> std::io::Result<usize> {
        let mut all: Vec<(String, String, mc_runtime::logs::Entry)> = Vec::new();
        for t in self.tails.values_mut() {
            let mut entries = t.read();
            if let Some(n) = tail {
                let skip = entries.len().saturating_sub(n);
                entries.drain(..skip);
            }
            all.extend(
                entries
                    .into_iter()
                    .map(|e| (e.time.clone(), t.name.clone(), e)),
            );
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = std::io::stdout().lock();
        for (_, name, e) in &all {
            writeln!(out, "{}", self.prefixer.line(name, &e.time, &e.log))?;
        }
        out.flush()?;
        Ok(all.len())
    }
}
