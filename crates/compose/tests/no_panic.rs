//! The loader never panics: every file of the test corpus, and deterministic
//! mutations of each (bytes flipped, dropped, duplicated, spliced), load to either a
//! project or an error. The cargo-fuzz target in /fuzz explores further.

use std::path::{Path, PathBuf};

use mc_compose::{load, Env, LoadOptions};

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A small xorshift generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b":", b"-", b"{", b"}", b"[", b"]", b"&a", b"*a", b"<<", b"!reset", b"${", b"$$", b"\n", b"  ",
    b"'", b"\"", b"#", b"\t", b"?", b"|", b">",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let pos = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = pos.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let end = (pos + 1 + rng.below(8)).min(v.len());
                v.drain(pos.min(end)..end);
            }
            2 => {
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(pos..pos, tok.iter().copied());
            }
            3 if !other.is_empty() => {
                let s = rng.below(other.len());
                let e = (s + rng.below(64)).min(other.len());
                v.splice(pos..pos, other[s..e].iter().copied());
            }
            _ => {
                let s = pos.min(v.len());
                let e = (s + rng.below(16)).min(v.len());
                let chunk: Vec<u8> = v[s..e].to_vec();
                v.splice(s..s, chunk);
            }
        }
    }
    v
}

fn try_load(text: &[u8], dir: &Path) {
    let env: Env = [("HOME", "/home/test"), ("SET", "x")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = LoadOptions {
        files: vec!["-".into()],
        stdin: Some(String::from_utf8_lossy(text).into_owned()),
        cwd: Some(dir.to_path_buf()),
        environment: Some(env),
        ..Default::default()
    };
    let _ = load(&opts);
}

#[test]
fn corpus_and_mutations_never_panic() {
    let files = corpus();
    assert!(files.len() > 60);
    let texts: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|p| (p.parent().unwrap().to_path_buf(), std::fs::read(p).unwrap()))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let rounds: usize = std::env::var("MC_NO_PANIC_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    for (i, (dir, text)) in texts.iter().enumerate() {
        try_load(text, dir);
        for _ in 0..rounds {
            let other = &texts[(i + 1 + rng.below(texts.len())) % texts.len()].1;
            let m = mutate(&mut rng, text, other);
            let result = std::panic::catch_unwind(|| try_load(&m, dir));
            assert!(
                result.is_ok(),
                "loader panicked on a mutation of {}:\n{}",
                files[i].display(),
                String::from_utf8_lossy(&m)
            );
        }
    }
}
