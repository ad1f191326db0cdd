//! Builds the example plugins (`plugins/`) and the misbehaving test plugins (`tests/plugins/`)
//! for wasm32-wasip2, the JavaScript ones (`plugins-js/`, `tests/plugins-js/`) with the
//! JavaScript SDK's `wxhost-build-js` and the Python ones (`plugins-py/`, `tests/plugins-py/`)
//! with the Python SDK's `wxhost_sdk.build`, and exposes their paths as constants
//! (`wxhost_test_plugins::ECHO`, `ECHO_JS`, `ECHO_PY`, …).
//!
//! Each Rust workspace is built by a nested cargo in its own directory (so its
//! `.cargo/config.toml` applies) into `target/wasm`, a target directory of its own: no lock is
//! shared with the outer build. The JavaScript plugins go to `target/wasm-js` and the Python
//! ones to `target/wasm-py`, all built at once (about 5 s a JavaScript component of 12 MB, 12 s
//! a Python one of 20 MB) whenever their sources or an SDK change.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

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
    ("tests/plugins-js/misbehave", "misbehave-js"),
];

/// The Python plugins: (folder, name); each folder's module is `app.py`.
const PY_PLUGINS: &[(&str, &str)] = &[
    ("plugins-py/echo", "echo-py"),
    ("plugins-py/guess-number", "guess-number-py"),
    ("plugins-py/quote-cache", "quote-cache-py"),
    ("tests/plugins-py/misbehave", "misbehave-py"),
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
    for dir in [
        "plugin-sdk-js/src",
        "plugin-sdk-js/bin",
        "plugin-sdk-js/wit",
        "package-lock.json",
        "plugin-sdk-py/wxhost_sdk",
        "plugin-sdk-py/wit",
        "plugin-sdk-py/requirements.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let mut builds = Vec::new();
    for (folder, name) in JS_PLUGINS {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(folder).join("src").display()
        );
        let path = root.join("target/wasm-js").join(format!("{name}.wasm"));
        builds.push((
            build_js(root, &root.join(folder).join("src/plugin.js"), &path),
            *name,
        ));
        constants.push_str(&constant(name, "JavaScript", &path));
    }
    for (folder, name) in PY_PLUGINS {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(folder).join("app.py").display()
        );
        let path = root.join("target/wasm-py").join(format!("{name}.wasm"));
        builds.push((
            build_py(root, &root.join(folder).join("app.py"), &path),
            *name,
        ));
        constants.push_str(&constant(name, "Python", &path));
    }
    for (mut build, name) in builds {
        let status = build.wait().expect("waits for a plugin build");
        assert!(status.success(), "building the plugin {name} failed");
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

/// The constant naming the component `path` of plugin `name`, written in `lang`.
fn constant(name: &str, lang: &str, path: &Path) -> String {
    format!(
        "/// `{name}` ({lang}) built with its SDK.\npub const {}: &str = {:?};\n",
        name.replace('-', "_").to_uppercase(),
        path.display().to_string()
    )
}

/// Starts building the JavaScript plugin `entry` into `out` with the SDK's build tool.
fn build_js(root: &Path, entry: &Path, out: &Path) -> Child {
    assert!(
        root.join("node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "the JavaScript build tools are not installed: run `npm ci` in {} (scripts/setup.sh --tests does)",
        root.display()
    );
    Command::new("node")
        .arg(root.join("plugin-sdk-js/bin/wxhost-build-js.js"))
        .arg(entry)
        .arg("-o")
        .arg(out)
        .current_dir(root)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (Node.js 20 or later is needed): {e}"))
}

/// Starts building the Python plugin `app` into `out` with the SDK's build module.
fn build_py(root: &Path, app: &Path, out: &Path) -> Child {
    let python = root.join("target/py-venv/bin/python");
    assert!(
        python.is_file(),
        "the Python build tools are not installed: run scripts/setup.sh --tests (it makes {})",
        python.display()
    );
    Command::new(python)
        .args(["-m", "wxhost_sdk.build"])
        .arg(app)
        .arg("-o")
        .arg(out)
        .current_dir(root)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the Python build: {e}"))
}
