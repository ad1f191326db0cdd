//! The compile cache and the hot-reloaded plugins folder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wxhost::plugin::{Origin, Outcome, Registry, Runtime, RuntimeLimits};
use wxhost_tests::plugins;

use super::{default_context, reply_text, text};

fn copy(from: &str, dir: &std::path::Path, name: &str) {
    // Write then rename, as a deploy tool would, so a scan never sees half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(from, &tmp).expect("copy plugin");
    std::fs::rename(&tmp, dir.join(name)).expect("rename plugin");
}

#[test]
fn a_restart_loads_plugins_from_the_compile_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let wasm = std::fs::read(plugins::ECHO).expect("echo built");
    let first = Runtime::new(RuntimeLimits::default(), Some(cache.path().into())).expect("runtime");
    let compiled = first.load("echo", &wasm).expect("loads");
    assert_eq!(compiled.origin(), Origin::Compiled);
    let second =
        Runtime::new(RuntimeLimits::default(), Some(cache.path().into())).expect("runtime");
    let cached = second.load("echo", &wasm).expect("loads");
    assert_eq!(cached.origin(), Origin::Cache);
    assert_eq!(cached.hash(), compiled.hash());
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let cache = tempfile::tempdir().expect("tempdir");
    let wasm = std::fs::read(plugins::ECHO).expect("echo built");
    let rt = Runtime::new(RuntimeLimits::default(), Some(cache.path().into())).expect("runtime");
    rt.load("echo", &wasm).expect("loads");
    for entry in std::fs::read_dir(cache.path()).expect("cache dir") {
        std::fs::write(entry.expect("entry").path(), b"garbage").expect("corrupt");
    }
    let reloaded = rt.load("echo", &wasm).expect("recompiles");
    assert_eq!(reloaded.origin(), Origin::Compiled);
}

#[tokio::test]
async fn files_added_replaced_broken_and_removed_are_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Arc::new(super::runtime());
    let registry = Registry::new(Arc::clone(&rt), dir.path());

    copy(plugins::ECHO, dir.path(), "bot.wasm");
    std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
    let report = registry.scan().await;
    assert_eq!(report.loaded, ["bot"]);
    let old = registry.get("bot").expect("loaded");
    assert_eq!(registry.names(), ["bot"]);

    // Replacing the file swaps the plugin; a call holding the old version still runs it.
    copy(plugins::WELCOME, dir.path(), "bot.wasm");
    let report = registry.scan().await;
    assert_eq!(report.reloaded, ["bot"]);
    let new = registry.get("bot").expect("reloaded");
    assert_eq!(
        rt.call(&new, &default_context(), &text("o", "hi"))
            .await
            .result
            .expect("pass"),
        Outcome::Pass
    );
    assert_eq!(
        reply_text(
            rt.call(&old, &default_context(), &text("o", "hi"))
                .await
                .result
        ),
        "echo: hi"
    );

    // A broken file is reported and the previous version keeps serving.
    std::fs::write(dir.path().join("bot.wasm"), b"\0asm broken").expect("write");
    let report = registry.scan().await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].1.contains("cannot be loaded"),
        "{report:?}"
    );
    assert_eq!(registry.get("bot").expect("still there").hash(), new.hash());
    assert_eq!(
        registry.scan().await,
        Default::default(),
        "an unchanged broken file is not retried"
    );

    // Deleting the file unloads the plugin.
    std::fs::remove_file(dir.path().join("bot.wasm")).expect("remove");
    let report = registry.scan().await;
    assert_eq!(report.unloaded, ["bot"]);
    assert!(registry.get("bot").is_none());
}

#[tokio::test]
async fn the_watcher_picks_up_a_new_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Arc::new(Registry::new(Arc::new(super::runtime()), dir.path()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(
        Arc::clone(&registry).watch(Duration::from_millis(250), async {
            let _ = stopped.await;
        }),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    copy(plugins::ECHO, dir.path(), "late.wasm");
    let copied = Instant::now();
    while registry.get("late").is_none() {
        assert!(copied.elapsed() < Duration::from_secs(5), "not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    watcher.await.expect("watcher stops");
}
