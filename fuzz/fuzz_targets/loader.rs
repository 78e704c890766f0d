//! Fuzz the whole compose loader: any bytes as a compose file on stdin must give a
//! project or an error, never a panic, a hang or unbounded memory.
//!
//! RUSTC_BOOTSTRAP=1 cargo fuzz run loader -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use mc_compose::{load, Env, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: Env = [("HOME", "/nonexistent"), ("SET", "value"), ("EMPTY", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = LoadOptions {
        files: vec!["-".into()],
        stdin: Some(text.to_string()),
        // A directory with nothing in it: includes, extends and env files find nothing.
        cwd: Some(std::env::temp_dir().join("mc-compose-fuzz-empty")),
        environment: Some(env),
        ..Default::default()
    };
    if let Ok(p) = load(&opts) {
        // Rendering must not panic either.
        let _ = p.to_yaml();
        let _ = p.to_json();
    }
});
