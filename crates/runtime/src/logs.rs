//! The per-container log: Docker's json-file format, one JSON object per
//! line: `{"log":"text\n","stream":"stdout","time":"RFC 3339 nanos"}`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One log line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

pub fn log_path(container_dir: &Path) -> PathBuf {
    container_dir.join("log.json")
}

/// Splits each stream into lines and appends them to the log.
pub struct Writer {
    file: Option<File>,
    partial: [Vec<u8>; 2],
}

impl Writer {
    /// Open (append) the log; a log we cannot open costs the log, not the container.
    pub fn open(container_dir: &Path) -> Writer {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(container_dir))
            .ok();
        Writer {
            file,
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn emit(&mut self, stream: usize, line: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.into(),
            time: crate::state::now_rfc3339(),
        };
        if let Ok(mut json) = serde_json::to_vec(&entry) {
            json.push(b'\n');
            let _ = f.write_all(&json);
        }
    }

    /// A writer that keeps nothing (exec output is not logged, as in Docker).
    pub fn discard() -> Writer {
        Writer {
            file: None,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Feed bytes from stream 0 (stdout) or 1 (stderr).
    pub fn feed(&mut self, stream: usize, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            self.emit(stream, &buf[start..end]);
            start = end;
        }
        // Very long lines are cut like Docker's 16 KiB chunks.
        while buf.len() - start >= 16 * 1024 {
            let end = start + 16 * 1024;
            self.emit(stream, &buf[start..end]);
            start = end;
        }
        self.partial[stream] = buf[start..].to_vec();
    }

    /// Write out unterminated lines (at exit).
    pub fn flush(&mut self) {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.emit(s, &rest);
            }
        }
    }
}

/// Read every entry of a log.
pub fn read_all(container_dir: &Path) -> Vec<Entry> {
    let Ok(f) = File::open(log_path(container_dir)) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path());
        w.feed(0, b"hel");
        w.feed(0, b"lo\nwor");
        w.feed(1, b"oops\n");
        w.feed(0, b"ld");
        w.flush();
        let e = read_all(dir.path());
        let got: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("stdout", "hello\n"),
                ("stderr", "oops\n"),
                ("stdout", "world")
            ]
        );
        assert!(e[0].time.ends_with('Z'));
    }
}
