//! The host's module graph runs one way: each module uses only modules of layers below its own
//! (ARCHITECTURE.md, Invariants). The graph is read from the sources (`crate::name` and, inside
//! `plugin/`, `super::name`); `cargo test -p wxhost --test layering -- --nocapture` prints it.

use std::collections::BTreeSet;
use std::path::Path;

/// The crate's top-level modules, lowest layer first; `main.rs` (the CLI) is above them all.
const CRATE_LAYERS: &[&[&str]] = &[
    &["clock", "secret"],
    &["wechat"],
    &["storage", "telemetry", "http_client"],
    &["dedup"],
    &["wechat_api"],
    &["plugin"],
    &["config"],
    &["tenant"],
    &["late_reply", "menu"],
    &["dispatch"],
    &["http"],
    &["server"],
    &["simulator", "scaffold", "demo", "admin"],
    &["main"],
];

/// The submodules of `plugin/`, lowest layer first.
const PLUGIN_LAYERS: &[&[&str]] = &[
    &[
        "allow_list",
        "limits",
        "capture",
        "cache",
        "error",
        "bindings",
        "slots",
    ],
    &["convert", "context"],
    &["imports", "capabilities", "outbound"],
    &["host"],
    &["runtime"],
    &["registry"],
];

/// Which modules each module of `dir` names with `prefix` (`crate::` or `super::`): edges
/// `(from, to)`, the module of a file being its first path component under `dir`.
fn edges(dir: &Path, prefix: &str) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("readable source folder") {
                stack.push(entry.expect("readable entry").path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(dir).expect("under dir");
        let first = relative
            .components()
            .next()
            .expect("non-empty")
            .as_os_str()
            .to_string_lossy();
        let from = first.trim_end_matches(".rs").to_owned();
        let source = std::fs::read_to_string(&path).expect("readable source");
        // A `mod tests` block's `use super::*` names its own module, not another.
        for (at, _) in source.match_indices(prefix) {
            let to: String = source[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !to.is_empty() && to != from && to != "super" {
                edges.insert((from.clone(), to));
            }
        }
    }
    edges
}

fn layer_of(layers: &[&[&str]], module: &str) -> Option<usize> {
    layers.iter().position(|layer| layer.contains(&module))
}

/// The edges that do not go strictly down, and the modules no layer lists.
fn violations(layers: &[&[&str]], edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let mut problems = Vec::new();
    for (from, to) in edges {
        match (layer_of(layers, from), layer_of(layers, to)) {
            (Some(f), Some(t)) if t < f => {}
            (Some(_), Some(_)) => problems.push(format!("{from} -> {to} goes up or sideways")),
            (None, _) => problems.push(format!("{from} is in no layer")),
            (_, None) => problems.push(format!("{to} (used by {from}) is in no layer")),
        }
    }
    problems
}

fn check(name: &str, dir: &Path, prefix: &str, layers: &[&[&str]]) {
    let edges = edges(dir, prefix);
    println!("{name}:");
    for (from, to) in &edges {
        println!("  {from} -> {to}");
    }
    let problems = violations(layers, &edges);
    assert!(
        problems.is_empty(),
        "{name} breaks the layering:\n{}",
        problems.join("\n")
    );
}

#[test]
fn crate_modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    check("crate", &src, "crate::", CRATE_LAYERS);
}

#[test]
fn plugin_submodules_only_use_lower_layers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plugin");
    check("plugin", &dir, "super::", PLUGIN_LAYERS);
}

#[test]
fn a_cycle_is_reported() {
    let edges = BTreeSet::from([
        ("config".to_owned(), "wechat_api".to_owned()),
        ("wechat_api".to_owned(), "config".to_owned()),
    ]);
    assert_eq!(
        violations(CRATE_LAYERS, &edges),
        ["wechat_api -> config goes up or sideways"]
    );
}
