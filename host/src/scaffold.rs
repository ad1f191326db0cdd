//! `wxhost new-plugin NAME`: creates a plugin crate against `wxhost-sdk` that builds out of the
//! box: [`BUILD_COMMAND`] (a cargo alias in its `.cargo/config.toml`) builds the wasm32-wasip2
//! component, and a plain [`TEST_COMMAND`] runs its unit test natively.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::plugin::valid_name;

/// Builds a scaffolded crate's component, run in its directory: an alias for
/// `cargo build --release --target wasm32-wasip2`, defined in its `.cargo/config.toml`.
pub const BUILD_COMMAND: &str = "cargo build-plugin";

/// Runs a scaffolded crate's unit tests natively, run in its directory.
pub const TEST_COMMAND: &str = "cargo test";

/// Where [`BUILD_COMMAND`] puts the component of plugin `name`, relative to its crate.
pub fn wasm_output(name: &str) -> String {
    format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    )
}

/// Where this build of wxhost finds the SDK by default (the repository it was built from).
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk")
}

/// Creates the crate `name` under `parent`, depending on the SDK at `sdk`; returns its path.
pub fn new_plugin(name: &str, parent: &Path, sdk: &Path) -> anyhow::Result<PathBuf> {
    if !valid_name(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!(
            "invalid plugin name {name:?}: start with a lowercase letter, then use a-z 0-9 - _ (at most 64)"
        );
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK is not at {} (pass --sdk PATH)", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml: not the wxhost-sdk crate",
            sdk.display()
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        (".cargo/config.toml", CONFIG.to_owned()),
        (".gitignore", "/target\n".to_owned()),
        ("src/lib.rs", lib_rs(name)),
        ("README.md", readme(name)),
    ];
    for (path, content) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

const CONFIG: &str = r#"# `cargo build-plugin` builds the plugin for the host (wasm32-wasip2, release). Everything else
# (`cargo test`, `cargo check`, `cargo clippy`) runs natively unless given `--target`.
[alias]
build-plugin = ["build", "--release", "--target", "wasm32-wasip2"]

# A 64 KiB stack (Rust's default is 1 MiB) keeps the plugin's memory small, which makes a
# fresh instance about twice as cheap. Raise it if the plugin recurses deeply.
[target.wasm32-wasip2]
rustflags = ["-C", "link-arg=-zstack-size=65536"]
"#;

fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
wxhost-sdk = {{ path = {sdk:?} }}

# Small components instantiate fastest.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A crate of its own, not a member of an enclosing workspace.
[workspace]
"#,
        sdk = sdk.display().to_string()
    )
}

fn lib_rs(name: &str) -> String {
    let ty = type_name(name);
    format!(
        r#"//! `{name}`: a wxhost plugin.

use wxhost_sdk::{{Message, Outcome, Plugin, Reply}};

/// The plugin.
pub struct {ty};

impl Plugin for {ty} {{
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {{
        let Some(text) = msg.text() else {{
            return Ok(Outcome::Pass); // not a text message: let the next plugin try
        }};
        let prefix: String = wxhost_sdk::config::get("prefix")?.unwrap_or_else(|| "you said".into());
        Ok(Reply::text(format!("{{prefix}}: {{text}}")).into())
    }}
}}

wxhost_sdk::export!({ty});

#[cfg(test)]
mod tests {{
    use super::*;
    use wxhost_sdk::testing::{{TestHost, text_message}};

    #[test]
    fn answers_text_with_the_configured_prefix() {{
        let _host = TestHost::new().setting("prefix", "heard").install();
        let outcome = {ty}::handle(&text_message("o_user", "hello")).unwrap();
        assert_eq!(outcome, Reply::text("heard: hello").into());
    }}
}}
"#
    )
}

fn readme(name: &str) -> String {
    let wasm = wasm_output(name);
    format!(
        r#"# {name}

A wxhost plugin.

- Build: `{BUILD_COMMAND}`, an alias set in `.cargo/config.toml` for
  `cargo build --release --target wasm32-wasip2` (install the target once with
  `rustup target add wasm32-wasip2`). It writes the component to
  `{wasm}`.
- Test: `{TEST_COMMAND}` runs the unit tests natively, with `wxhost_sdk::testing::TestHost`
  standing in for the host (kv, settings, log, HTTP, the WeChat API).
- Deploy: copy the component to the host's plugins folder as `{name}.wasm`; it is loaded
  within a second, no restart.
- Try it: `wxhost send --config wxhost.toml --tenant demo --text "hello"` once a tenant's chain
  names `{name}`.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("weather-bot"), "WeatherBot");
        assert_eq!(type_name("a_b-c"), "ABC");
        assert_eq!(type_name("echo"), "Echo");
    }

    #[test]
    fn refuses_bad_names_and_existing_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", "9lives", "Upper", "has space", "../escape", "dots.too"] {
            assert!(
                new_plugin(bad, dir.path(), &default_sdk_path()).is_err(),
                "{bad:?}"
            );
        }
        new_plugin("twice", dir.path(), &default_sdk_path()).expect("first");
        let err = new_plugin("twice", dir.path(), &default_sdk_path()).expect_err("second");
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = new_plugin("nosdk", dir.path(), Path::new("/nonexistent")).expect_err("sdk");
        assert!(err.to_string().contains("pass --sdk"), "{err}");
    }
}
