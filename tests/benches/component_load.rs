//! What a plugin's component costs before its first call: its size, compiling it (a cache miss:
//! the first start with a new or changed plugin), and loading it from the compile cache (every
//! later start), for the Rust `echo` and its JavaScript and Python ports. One-shot timings (a
//! compile takes seconds), each the median of three, printed as a table.
//!
//! `cargo bench -p wxhost-tests --bench component_load`

use std::time::{Duration, Instant};

use wxhost::plugin::{Runtime, RuntimeLimits};
use wxhost_tests::plugins;

const RUNS: usize = 3;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    println!(
        "{:10} {:>9} {:>12} {:>16}",
        "plugin", "size MB", "compile s", "from cache ms"
    );
    for (name, path) in [
        ("echo", plugins::ECHO),
        ("echo-js", plugins::ECHO_JS),
        ("echo-py", plugins::ECHO_PY),
    ] {
        let wasm = std::fs::read(path).expect("built");
        let compile = median(
            (0..RUNS)
                .map(|_| {
                    let runtime = Runtime::new(RuntimeLimits::default(), None).expect("runtime");
                    let started = Instant::now();
                    runtime.load(name, &wasm).expect("loads");
                    started.elapsed()
                })
                .collect(),
        );
        let cache = tempfile::tempdir().expect("tempdir");
        Runtime::new(RuntimeLimits::default(), Some(cache.path().to_owned()))
            .expect("runtime")
            .load(name, &wasm)
            .expect("compiles into the cache");
        // A restart: a new engine, the plugin from the cache.
        let cached = median(
            (0..RUNS)
                .map(|_| {
                    let runtime =
                        Runtime::new(RuntimeLimits::default(), Some(cache.path().to_owned()))
                            .expect("runtime");
                    let started = Instant::now();
                    runtime.load(name, &wasm).expect("loads from the cache");
                    started.elapsed()
                })
                .collect(),
        );
        println!(
            "{name:10} {:>9.1} {:>12.2} {:>16.1}",
            wasm.len() as f64 / 1e6,
            compile.as_secs_f64(),
            cached.as_secs_f64() * 1e3
        );
    }
}
