//! The contract: `pull_blocking`/`ensure_blocking` leave no threads behind
//! (the runtime forks/clones after them). Its own process, so no other test's
//! threads are counted.

use std::io::{Read, Write};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn no_threads_left_after_a_pull() {
    // A "registry" that answers 404 to everything: the pull fails fast, after
    // the runtime, the HTTP client and the connection pool were all used.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = mc_image::Store::open(dir.path()).unwrap();
    let before = threads();
    let err = mc_image::ensure_blocking(&store, &format!("{addr}/x/y:latest"), &Default::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("does not look like a registry"),
        "{err}"
    );
    assert_eq!(threads(), before, "threads left behind by the pull");
}
