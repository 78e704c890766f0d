//! Dockerfile parsing into a typed model ([`Dockerfile`]).
//!
//! ```
//! let df = mc_build::dockerfile::parse("FROM busybox AS base\nRUN echo hi\n").unwrap();
//! assert_eq!(df.stages[0].name.as_deref(), Some("base"));
//! ```
//!
//! Errors carry the 1-based line and BuildKit's wording:
//! `dockerfile parse error on line 3: unknown instruction: FRM (did you mean FROM?)`.

pub(crate) mod heredoc;
pub mod instruction;
mod lines;
mod parser;
#[cfg(test)]
mod tests;
pub(crate) mod words;

pub use instruction::*;

use std::path::Path;

/// A Dockerfile syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    /// 1-based line where the offending instruction starts.
    pub line: usize,
    /// What is wrong (BuildKit's wording where it has one).
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, message: String) -> ParseError {
        ParseError { line, message }
    }
}

impl From<ParseError> for crate::Error {
    fn from(e: ParseError) -> Self {
        crate::Error::Invalid(e.to_string())
    }
}

/// Parse Dockerfile text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let scanned = lines::scan(text)?;
    parser::build(scanned)
}

/// Read and parse a Dockerfile; errors name the file
/// (`Dockerfile: dockerfile parse error on line 2: ...`).
pub fn parse_file(path: &Path) -> Result<Dockerfile, crate::Error> {
    let text = std::fs::read(path).map_err(|e| {
        crate::Error::Invalid(format!("cannot read Dockerfile {}: {e}", path.display()))
    })?;
    let text = String::from_utf8_lossy(&text);
    parse(&text).map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))
}

/// A candidate the word is a prefix of, or the closest within edit distance 2
/// (case-insensitive), for "did you mean".
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    if w.len() >= 3 {
        if let Some(c) = candidates
            .iter()
            .find(|c| c.to_ascii_lowercase().starts_with(&w))
        {
            return Some(c);
        }
    }
    candidates
        .iter()
        .map(|c| (levenshtein(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
