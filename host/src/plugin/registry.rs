//! The plugins folder: every `*.wasm` in it is a plugin named by its file stem. Adding,
//! replacing or deleting a file loads, swaps or unloads the plugin without a restart; calls in
//! flight keep the version they started with; an invalid file is reported and the previous
//! version keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::cache::Origin;
use super::runtime::{Plugin, Runtime};

/// What changed in one scan of the folder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Plugins loaded for the first time.
    pub loaded: Vec<String>,
    /// Plugins replaced by a new version.
    pub reloaded: Vec<String>,
    /// Plugins removed because their file is gone.
    pub unloaded: Vec<String>,
    /// Files that could not be loaded, with the reason (the previous version, if any, stays).
    pub failed: Vec<(String, String)>,
}

/// A file's identity between scans: a change of size or modification time triggers a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// The plugins currently loaded from a folder.
pub struct Registry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
    /// The stamp of each file as last seen, loaded or not (a failed file is retried only when
    /// it changes again).
    seen: tokio::sync::Mutex<HashMap<String, Stamp>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dir", &self.dir)
            .field("plugins", &self.names())
            .finish_non_exhaustive()
    }
}

/// A plugin name is a file stem of ASCII letters, digits, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Registry {
    /// A registry over `dir` (nothing loaded until the first [`Registry::scan`]).
    pub fn new(runtime: Arc<Runtime>, dir: impl Into<PathBuf>) -> Self {
        Registry {
            runtime,
            dir: dir.into(),
            plugins: RwLock::new(HashMap::new()),
            seen: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The folder watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The runtime plugins run in.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The current version of plugin `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins
            .read()
            .ok()
            .and_then(|plugins| plugins.get(name).cloned())
    }

    /// The names of the loaded plugins, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .plugins
            .read()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Brings the loaded set in line with the folder: loads new and changed files (compiling on
    /// a blocking thread), unloads plugins whose file is gone. Logs every change and failure.
    pub async fn scan(&self) -> ScanReport {
        let mut seen = self.seen.lock().await;
        let mut report = ScanReport::default();
        let files = match list_wasm_files(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot read the plugins folder: {e}");
                return report;
            }
        };

        for (name, (path, stamp)) in &files {
            if seen.get(name) == Some(stamp) {
                continue;
            }
            seen.insert(name.clone(), *stamp);
            let wasm = match std::fs::read(path) {
                Ok(wasm) => wasm,
                Err(e) => {
                    report.failed.push((name.clone(), e.to_string()));
                    continue;
                }
            };
            let previous = self.get(name);
            if previous
                .as_ref()
                .is_some_and(|p| p.hash() == super::cache::wasm_hash(&wasm))
            {
                continue; // touched, not changed
            }
            let runtime = Arc::clone(&self.runtime);
            let plugin_name = name.clone();
            let loaded =
                tokio::task::spawn_blocking(move || runtime.load(&plugin_name, &wasm)).await;
            match loaded {
                Ok(Ok(plugin)) => {
                    tracing::info!(
                        plugin = %name,
                        hash = &plugin.hash()[..12],
                        cached = plugin.origin() == Origin::Cache,
                        "{}",
                        if previous.is_some() { "plugin reloaded" } else { "plugin loaded" }
                    );
                    if let Ok(mut plugins) = self.plugins.write() {
                        plugins.insert(name.clone(), Arc::new(plugin));
                    }
                    if previous.is_some() {
                        report.reloaded.push(name.clone());
                    } else {
                        report.loaded.push(name.clone());
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(plugin = %name, "{e}; {}", keeps(previous.is_some()));
                    report.failed.push((name.clone(), e.to_string()));
                }
                Err(join) => {
                    tracing::error!(plugin = %name, "plugin load panicked: {join}");
                    report.failed.push((name.clone(), join.to_string()));
                }
            }
        }

        seen.retain(|name, _| files.contains_key(name));
        if let Ok(mut plugins) = self.plugins.write() {
            plugins.retain(|name, _| {
                let keep = files.contains_key(name);
                if !keep {
                    tracing::info!(plugin = %name, "plugin unloaded: its file is gone");
                    report.unloaded.push(name.clone());
                }
                keep
            });
        }
        report.loaded.sort();
        report.reloaded.sort();
        report.unloaded.sort();
        report
    }

    /// Scans every `interval` until `shutdown` resolves.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticker.tick() => { self.scan().await; }
                () = &mut shutdown => break,
            }
        }
    }
}

fn keeps(had_previous: bool) -> &'static str {
    if had_previous {
        "the previous version keeps serving"
    } else {
        "the plugin is not available"
    }
}

/// `name → (path, stamp)` for each `*.wasm` with a valid name; other files are ignored.
fn list_wasm_files(dir: &Path) -> std::io::Result<HashMap<String, (PathBuf, Stamp)>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if !valid_name(name) {
            tracing::warn!(file = %path.display(), "ignoring plugin file: names use A-Z a-z 0-9 - _");
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let stamp = Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        files.insert(name.to_owned(), (path, stamp));
    }
    Ok(files)
}
