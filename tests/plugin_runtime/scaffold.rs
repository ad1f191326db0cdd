//! `wxhost new-plugin` creates a crate that builds for wasm32-wasip2 and runs in the host.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use super::{context, reply_text, runtime, text};

#[tokio::test]
async fn a_new_plugin_builds_out_of_the_box_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crate_dir = wxhost::scaffold::new_plugin(
        "hello-bot",
        dir.path(),
        &wxhost::scaffold::default_sdk_path(),
    )
    .expect("scaffold");

    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&crate_dir)
        .args(["build", "--release", "--quiet"])
        // Reuse the compiled SDK dependencies of the plugin builds.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm"),
        );
    for (key, _) in std::env::vars() {
        if key.starts_with("RUSTC_") || key == "RUSTFLAGS" || key == "CARGO_ENCODED_RUSTFLAGS" {
            cargo.env_remove(key);
        }
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "the scaffolded plugin does not build");

    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm/wasm32-wasip2/release/hello_bot.wasm");
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
