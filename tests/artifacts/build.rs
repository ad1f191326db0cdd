//! Builds the example plugins (`plugins/`) and the misbehaving test plugins (`tests/plugins/`)
//! for wasm32-wasip2, and the JavaScript ones (`plugins-js/`, `tests/plugins-js/`) with the
//! JavaScript SDK's `wxhost-build-js`, and exposes their paths as constants
//! (`wxhost_test_plugins::ECHO`, `wxhost_test_plugins::ECHO_JS`, …).
//!
//! Each Rust workspace is built by a nested cargo in its own directory (so its
//! `.cargo/config.toml` applies) into `target/wasm`, a target directory of its own: no lock is
//! shared with the outer build. The JavaScript plugins go to `target/wasm-js`, each built once
//! per change of its sources or of the SDK (about 5 s each: a component of 12 MB).

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

/// The JavaScript plugins: (folder, name); each folder's entry is `src/plugin.js`.
const JS_PLUGINS: &[(&str, &str)] = &[
    ("plugins-js/echo", "echo-js"),
    ("plugins-js/guess-number", "guess-number-js"),
    ("plugins-js/quote-cache", "quote-cache-js"),
    ("tests/plugins-js/infinite-loop", "infinite-loop-js"),
    ("tests/plugins-js/memory-bomb", "memory-bomb-js"),
    ("tests/plugins-js/throw", "throw-js"),
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
    for dir in ["plugin-sdk-js", "package-lock.json"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let js_dir = root.join("target/wasm-js");
    for (folder, name) in JS_PLUGINS {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(folder).join("src").display()
        );
        let path = js_dir.join(format!("{name}.wasm"));
        build_js(root, &root.join(folder).join("src/plugin.js"), &path);
        constants.push_str(&format!(
            "/// `{name}` (JavaScript) built with `wxhost-build-js`.\npub const {}: &str = {:?};\n",
            name.replace('-', "_").to_uppercase(),
            path.display().to_string()
        ));
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

/// Builds the JavaScript plugin `entry` into `out` with the SDK's build tool.
fn build_js(root: &Path, entry: &Path, out: &Path) {
    let tool = root.join("plugin-sdk-js/bin/wxhost-build-js.js");
    assert!(
        root.join("node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "the JavaScript build tools are not installed: run `npm ci` in {} (scripts/setup.sh --tests does)",
        root.display()
    );
    let status = Command::new("node")
        .arg(&tool)
        .arg(entry)
        .arg("-o")
        .arg(out)
        .current_dir(root)
        .status()
        .unwrap_or_else(|e| panic!("cannot run node (Node.js 20 or later is needed): {e}"));
    assert!(status.success(), "building {} failed", entry.display());
}
