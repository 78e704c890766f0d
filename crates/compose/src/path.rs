//! Dotted paths into the document (`services.web.ports[0]`), for messages.

use std::fmt;

#[derive(Clone, Debug, Default)]
pub struct Path(Vec<Seg>);

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }

    pub fn of(keys: &[&str]) -> Path {
        Path(keys.iter().map(|k| Seg::Key(k.to_string())).collect())
    }

    pub fn push_key(&mut self, k: &str) {
        self.0.push(Seg::Key(k.to_string()));
    }

    pub fn push_index(&mut self, i: usize) {
        self.0.push(Seg::Index(i));
    }

    pub fn pop(&mut self) {
        self.0.pop();
    }

    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.push_key(k);
        p
    }

    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.push_index(i);
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}
