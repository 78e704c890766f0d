//! Output helpers of the compose commands: the progress reporter (docker
//! compose's plain lines ` Container web-1  Started`), warnings, tables,
//! and engine errors mapped to our exit codes.

use crate::exit::user_error;

/// Engine errors: bad input → exit 1, the rest → 125.
pub fn err(e: mc_engine::Error) -> anyhow::Error {
    if e.is_user_error() {
        user_error(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

/// Prints engine progress on stderr, as `docker compose --progress plain`.
pub struct Printer {
    pub quiet: bool,
}

impl mc_engine::Reporter for Printer {
    fn status(&mut self, kind: &str, name: &str, status: &str) {
        if !self.quiet {
            eprintln!(" {kind} {name}  {status}");
        }
    }
    fn warn(&mut self, msg: &str) {
        eprintln!("WARN[0000] {msg}");
    }
}

/// Left-aligned columns separated by three spaces (docker's tabwriter look).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(&c);
            } else {
                let pad = widths[i] - c.chars().count();
                s.push_str(&c);
                s.push_str(&" ".repeat(pad + 3));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// Truncate like docker's table (`"docker-entrypoint.s…"`).
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}
