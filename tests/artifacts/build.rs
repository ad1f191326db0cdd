//! Builds the example plugins (`plugins/`) and the misbehaving test plugins (`tests/plugins/`)
//! for wasm32-wasip2 and exposes their paths as constants (`wxhost_test_plugins::ECHO`, …).
//!
//! Each workspace is built by a nested cargo in its own directory (so its `.cargo/config.toml`
//! applies) into `target/wasm`, a target directory of its own: no lock is shared with the
//! outer build.

use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACES: &[(&str, &[&str])] = &[
    (
        "plugins",
        &[
            "echo",
            "keyword-reply",
            "welcome",
            "guess-number",
            "stock-quote",
            "visit-counter",
        ],
    ),
    (
        "tests/plugins",
        &[
            "infinite-loop",
            "memory-bomb",
            "deep-recursion",
            "panic",
            "huge-reply",
            "kv-flood",
            "sandbox-probe",
            "reply-kinds",
            "slow-counter",
            "capability-probe",
            "instance-state",
            "field-reader",
            "message-mirror",
            "log-flood",
            "http-hoard",
        ],
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("tests/artifacts is two levels inside the repository");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (workspace, _) in WORKSPACES {
        build(&cargo, &root.join(workspace));
        println!("cargo:rerun-if-changed={}", root.join(workspace).display());
    }
    for dir in ["plugin-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let wasm_dir = root.join("target/wasm/wasm32-wasip2/release");
    let mut constants = String::new();
    for (_, names) in WORKSPACES {
        for name in *names {
            let path = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
            assert!(path.is_file(), "{} was not built", path.display());
            constants.push_str(&format!(
                "/// `{name}` built for wasm32-wasip2.\npub const {}: &str = {:?};\n",
                name.replace('-', "_").to_uppercase(),
                path.display().to_string()
            ));
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("plugins.rs");
    std::fs::write(out, constants).expect("write plugins.rs");
}

fn build(cargo: &str, workspace: &Path) {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args([
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip2",
    ]);
    // The outer cargo's settings (rustflags, wrappers such as clippy-driver, profile and
    // package variables) must not leak into the wasm build.
    for (key, _) in std::env::vars() {
        let leaks = (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS")
            || key.starts_with("RUSTC_")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS";
        if leaks {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", workspace.display()));
    assert!(
        status.success(),
        "building the plugins in {} failed (is the wasm32-wasip2 target installed? run scripts/setup.sh)",
        workspace.display()
    );
}
