//! `wxhost new-plugin` creates a crate whose `cargo build-plugin` builds a component that runs in
//! the host, and whose plain `cargo test` runs its unit test natively.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use wxhost::scaffold::Lang;

use super::{context, reply_text, runtime, text};

/// The target directory of the plugin builds: reusing it reuses their compiled SDK dependencies.
fn plugin_target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm")
}

/// `cargo ARGS` in `dir`, as a plugin author would run it: without the settings of the cargo
/// running this test.
fn cargo_in(dir: &Path, args: &[&str]) -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", plugin_target_dir());
    for (key, _) in std::env::vars() {
        if key.starts_with("RUSTC_")
            || key == "RUSTFLAGS"
            || key == "CARGO_ENCODED_RUSTFLAGS"
            || key == "CARGO_BUILD_TARGET"
        {
            cargo.env_remove(key);
        }
    }
    cargo
}

#[tokio::test]
async fn a_new_plugin_builds_out_of_the_box_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rust = Lang::Rust;
    let crate_dir =
        wxhost::scaffold::new_plugin("hello-bot", rust, dir.path(), &rust.default_sdk_path())
            .expect("scaffold");

    // The commands `wxhost new-plugin` prints, as they are.
    let build: Vec<&str> = rust.build_command().split(' ').collect();
    assert_eq!(build, ["cargo", "build-plugin"]);
    let status = cargo_in(&crate_dir, &[build[1], "--quiet"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the scaffolded plugin does not build");

    let test: Vec<&str> = rust.test_command().split(' ').collect();
    assert_eq!(test, ["cargo", "test"]);
    let output = cargo_in(&crate_dir, &[test[1]])
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the scaffolded plugin's tests fail natively:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("answers_text_with_the_configured_prefix ... ok"),
        "its unit test did not run:\n{stdout}"
    );

    assert_eq!(
        rust.wasm_output("hello-bot"),
        "target/wasm32-wasip2/release/hello_bot.wasm"
    );
    let wasm = plugin_target_dir().join("wasm32-wasip2/release/hello_bot.wasm");
    let rt = runtime();
    let plugin = rt
        .load("hello-bot", &std::fs::read(&wasm).expect("built"))
        .expect("loads");
    let ctx = context(
        "demo",
        json!({ "prefix": "bot heard" }),
        std::sync::Arc::new(wxhost::storage::MemoryKv::default()),
        wxhost::plugin::Limits::default(),
    );
    assert_eq!(
        reply_text(rt.call(&plugin, &ctx, &text("o", "hi")).await.result),
        "bot heard: hi"
    );
}

#[tokio::test]
async fn a_new_javascript_plugin_builds_and_tests_out_of_the_box_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let js = Lang::Js;
    let project = wxhost::scaffold::new_plugin("hello-js", js, dir.path(), &js.default_sdk_path())
        .expect("scaffold");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The printed commands, run by a shell as a user would; npm reads what it can from the
    // repository's cache (filled by `npm ci` there).
    let run = |command: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&project)
            .env("npm_config_cache", repo.join("target/npm-cache"))
            .env("npm_config_prefer_offline", "true")
            .env("npm_config_audit", "false")
            .env("npm_config_fund", "false")
            .output()
            .expect("sh runs")
    };
    assert_eq!(js.build_command(), "npm install && npm run build");
    let built = run(js.build_command());
    assert!(
        built.status.success(),
        "the scaffolded JavaScript plugin does not build:\n{}\n{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(js.test_command(), "npm test");
    let tested = run(js.test_command());
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success()
            && stdout.contains("ok 1 - answers text with the configured prefix"),
        "its test fails or did not run:\n{stdout}\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );

    let wasm = project.join(js.wasm_output("hello-js"));
    let rt = runtime();
    let plugin = rt
        .load("hello-js", &std::fs::read(&wasm).expect("built"))
        .expect("loads");
    let ctx = context(
        "demo",
        json!({ "prefix": "js heard" }),
        std::sync::Arc::new(wxhost::storage::MemoryKv::default()),
        wxhost::plugin::Limits::default(),
    );
    assert_eq!(
        reply_text(rt.call(&plugin, &ctx, &text("o", "hi")).await.result),
        "js heard: hi"
    );
}

#[tokio::test]
async fn a_new_python_plugin_builds_and_tests_out_of_the_box_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let py = Lang::Python;
    let project = wxhost::scaffold::new_plugin("hello-py", py, dir.path(), &py.default_sdk_path())
        .expect("scaffold");
    // The printed commands, run by a shell as a user would (pip reads what it can from its
    // cache, filled by scripts/setup.sh).
    let run = |command: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&project)
            .output()
            .expect("sh runs")
    };
    assert_eq!(py.build_command(), "sh build.sh");
    let built = run(py.build_command());
    assert!(
        built.status.success(),
        "the scaffolded Python plugin does not build:\n{}\n{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(py.test_command(), "sh test.sh");
    let tested = run(py.test_command());
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success() && stdout.contains("1 passed"),
        "its test fails or did not run:\n{stdout}\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );

    let wasm = project.join(py.wasm_output("hello-py"));
    let rt = runtime();
    let plugin = rt
        .load("hello-py", &std::fs::read(&wasm).expect("built"))
        .expect("loads");
    let ctx = context(
        "demo",
        json!({ "prefix": "py heard" }),
        std::sync::Arc::new(wxhost::storage::MemoryKv::default()),
        wxhost::plugin::Limits::default(),
    );
    assert_eq!(
        reply_text(rt.call(&plugin, &ctx, &text("o", "hi")).await.result),
        "py heard: hi"
    );
}
