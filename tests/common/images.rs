//! Helpers for the image tests: running the binary with a chosen mirror and
//! environment, describing a directory tree file by file, and a small
//! fault-injecting HTTP proxy to put in front of the test registry.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A command for the binary with `--root root` and the given mirrors (none: no flag).
pub fn cmd(root: &Path, mirrors: &[String]) -> Command {
    let mut c = Command::new(crate::bin());
    c.arg("--root").arg(root);
    for m in mirrors {
        c.arg("--registry-mirror").arg(m);
    }
    c.env_remove("MINICOMPOSE_REGISTRY_MIRROR");
    c.stdin(Stdio::null());
    c
}

/// Run and capture.
pub fn run(c: &mut Command) -> Output {
    c.output().expect("spawn minicompose")
}

/// stdout + stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the registries with scripts/test-registry.sh")
    })
}

/// Every entry under `root` (root itself as "."): type, mode, owner, size,
/// link target and content hash, keyed by relative path.
pub fn describe_tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let ft = m.file_type();
        let (kind, extra) = if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            ("dir", String::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            ("file", hex::encode(Sha256::digest(&data)))
        } else if ft.is_char_device() {
            ("char", format!("{:x}", m.rdev()))
        } else if ft.is_block_device() {
            ("block", format!("{:x}", m.rdev()))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("other", String::new())
        };
        let size = if ft.is_file() || ft.is_symlink() {
            m.len()
        } else {
            0
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            rel,
            format!("{kind} {mode:o} {}:{} {size} {extra}", m.uid(), m.gid()),
        );
    }
    out
}

/// Differences between two tree descriptions, for an assertion message.
pub fn diff_trees(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("only in ours: {k} ({v})")),
            Some(w) if w != v => d.push(format!("{k}: ours {v} / theirs {w}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            d.push(format!("only in theirs: {k} ({v})"));
        }
    }
    d
}

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Blob bodies cut in half, with a Content-Length that matches the cut.
    Truncate,
    /// One byte of every blob body flipped.
    Corrupt,
    /// The first big blob response is cut mid-body by closing the connection.
    DropOnce,
    /// The first N blob requests get a 500.
    Error500(usize),
    /// Blob bodies trickle at about this many bytes per second.
    Slow(usize),
    /// Manifest requests get 429 with Docker Hub's rate-limit headers.
    RateLimit,
}

/// An HTTP/1.1 proxy in front of a registry that injects one kind of fault.
pub struct FaultProxy {
    pub addr: String,
    stop: Arc<AtomicBool>,
    pub blob_requests: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let blob_requests = Arc::new(AtomicUsize::new(0));
        let (stop2, count, upstream) = (stop.clone(), blob_requests.clone(), upstream.to_string());
        let dropped = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (count, dropped, upstream) = (count.clone(), dropped.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, fault, &count, &dropped);
                });
            }
        });
        FaultProxy {
            addr,
            stop,
            blob_requests,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    fault: Fault,
    count: &AtomicUsize,
    dropped: &AtomicBool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&req, b"\r\n\r\n").is_none() {
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let head_end = find(&req, b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&req[..head_end]).into_owned();
    let request_line = head.lines().next().unwrap_or("").to_string();
    let mut lines: Vec<String> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(String::from)
        .collect();
    lines.push("Connection: close".into());
    let is_blob = request_line.starts_with("GET ") && request_line.contains("/blobs/sha256:");
    let n = if is_blob {
        count.fetch_add(1, Ordering::SeqCst)
    } else {
        usize::MAX
    };
    if let Fault::Error500(k) = fault {
        if is_blob && n < k {
            client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
    }
    if matches!(fault, Fault::RateLimit) && request_line.contains("/manifests/") {
        client.write_all(
            b"HTTP/1.1 429 Too Many Requests\r\nratelimit-limit: 100;w=21600\r\nratelimit-remaining: 0;w=21600\r\n\
              Content-Type: application/json\r\nContent-Length: 85\r\nConnection: close\r\n\r\n\
              {\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"You have reached your pull limit.\"}]}",
        )?;
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let Some(split) = find(&resp, b"\r\n\r\n") else {
        client.write_all(&resp)?;
        return Ok(());
    };
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut body = resp[split + 4..].to_vec();
    let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 206");
    if !(is_blob && ok && body.len() > 1000) {
        client.write_all(&resp)?;
        return Ok(());
    }
    let set_len = |head: &str, len: usize| -> String {
        head.lines()
            .map(|l| {
                if l.to_ascii_lowercase().starts_with("content-length:") {
                    format!("Content-Length: {len}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    match fault {
        Fault::Truncate => {
            body.truncate(body.len() / 2);
            client.write_all(format!("{}\r\n\r\n", set_len(&head, body.len())).as_bytes())?;
            client.write_all(&body)?;
        }
        Fault::Corrupt => {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
            client.write_all(&resp[..split + 4])?;
            client.write_all(&body)?;
        }
        Fault::DropOnce => {
            client.write_all(&resp[..split + 4])?;
            if !dropped.swap(true, Ordering::SeqCst) {
                client.write_all(&body[..body.len() / 2])?;
                client.flush()?;
                let _ = client.shutdown(std::net::Shutdown::Both);
            } else {
                client.write_all(&body)?;
            }
        }
        Fault::Slow(rate) => {
            client.write_all(&resp[..split + 4])?;
            let chunk = (rate / 20).max(1);
            for c in body.chunks(chunk) {
                client.write_all(c)?;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Fault::Error500(_) | Fault::RateLimit => client.write_all(&resp)?,
    }
    Ok(())
}

/// Names starting with `mc-evil-` anywhere under `dir`, except inside layer dirs.
pub fn evil_names_outside_layers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            if path
                .strip_prefix(dir)
                .is_ok_and(|r| r.starts_with("layers"))
            {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with("mc-evil-") {
                found.push(path.display().to_string());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}
