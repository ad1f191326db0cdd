//! `wxhost new-plugin NAME --lang rust|js|python`: creates a plugin project against the SDK of its
//! language that builds out of the box with one command ([`Lang::build_command`]) and runs its
//! unit test natively with another ([`Lang::test_command`]).
//!
//! - Rust: a crate against `wxhost-sdk`; `cargo build-plugin` (an alias in its
//!   `.cargo/config.toml`) builds the wasm32-wasip2 component, `cargo test` its tests.
//! - JavaScript: an npm package against `@wxhost/plugin-sdk` (installed from the SDK's folder);
//!   `npm install && npm run build` builds the component with componentize-js, `npm test` runs
//!   its tests under Node with the SDK's fake host.
//! - Python: a module against `wxhost_sdk`; `sh build.sh` builds the component with
//!   componentize-py, `sh test.sh` runs its tests under pytest (both make the project's
//!   virtualenv the first time).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context as _, bail};

use crate::plugin::valid_name;

/// The language of a plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with `wxhost-sdk`.
    Rust,
    /// JavaScript (ES modules; TypeScript types included), with `@wxhost/plugin-sdk`.
    Js,
    /// Python, with `wxhost_sdk`.
    Python,
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" => Ok(Lang::Rust),
            "js" | "javascript" => Ok(Lang::Js),
            "python" | "py" => Ok(Lang::Python),
            other => Err(format!("unknown language {other:?}: rust, js or python")),
        }
    }
}

impl Lang {
    /// Builds a project's component, run in its directory.
    pub fn build_command(self) -> &'static str {
        match self {
            // An alias for `cargo build --release --target wasm32-wasip2`, defined in the
            // crate's `.cargo/config.toml`.
            Lang::Rust => "cargo build-plugin",
            Lang::Js => "npm install && npm run build",
            Lang::Python => "sh build.sh",
        }
    }

    /// Runs a project's unit tests natively, run in its directory.
    pub fn test_command(self) -> &'static str {
        match self {
            Lang::Rust => "cargo test",
            Lang::Js => "npm test",
            Lang::Python => "sh test.sh",
        }
    }

    /// Where the build command puts the component of plugin `name`, relative to its project.
    pub fn wasm_output(self, name: &str) -> String {
        match self {
            Lang::Rust => format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
            Lang::Js | Lang::Python => format!("dist/{name}.wasm"),
        }
    }

    /// Where this build of wxhost finds the language's SDK by default (the repository it was
    /// built from).
    pub fn default_sdk_path(self) -> PathBuf {
        let dir = match self {
            Lang::Rust => "../plugin-sdk",
            Lang::Js => "../plugin-sdk-js",
            Lang::Python => "../plugin-sdk-py",
        };
        Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
    }

    /// The file that marks a folder as the language's SDK.
    fn sdk_marker(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("Cargo.toml", "the wxhost-sdk crate"),
            Lang::Js => ("package.json", "the @wxhost/plugin-sdk package"),
            Lang::Python => ("requirements.lock", "the wxhost_sdk package"),
        }
    }
}

/// Creates the project `name` in `lang` under `parent`, depending on the SDK at `sdk`; returns
/// its path.
pub fn new_plugin(name: &str, lang: Lang, parent: &Path, sdk: &Path) -> anyhow::Result<PathBuf> {
    if !valid_name(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!(
            "invalid plugin name {name:?}: start with a lowercase letter, then use a-z 0-9 - _ (at most 64)"
        );
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK is not at {} (pass --sdk PATH)", sdk.display()))?;
    let (marker, what) = lang.sdk_marker();
    if !sdk.join(marker).is_file() {
        bail!("{} has no {marker}: not {what}", sdk.display());
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let files = match lang {
        Lang::Rust => vec![
            ("Cargo.toml", cargo_toml(name, &sdk)),
            (".cargo/config.toml", CONFIG.to_owned()),
            (".gitignore", "/target\n".to_owned()),
            ("src/lib.rs", lib_rs(name)),
            ("README.md", readme(name)),
        ],
        Lang::Js => js::files(name, &sdk),
        Lang::Python => python::files(name, &sdk),
    };
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
    let wasm = Lang::Rust.wasm_output(name);
    let (build, test) = (Lang::Rust.build_command(), Lang::Rust.test_command());
    format!(
        r#"# {name}

A wxhost plugin.

- Build: `{build}`, an alias set in `.cargo/config.toml` for
  `cargo build --release --target wasm32-wasip2` (install the target once with
  `rustup target add wasm32-wasip2`). It writes the component to
  `{wasm}`.
- Test: `{test}` runs the unit tests natively, with `wxhost_sdk::testing::TestHost`
  standing in for the host (kv, settings, log, HTTP, the WeChat API).
- Deploy: copy the component to the host's plugins folder as `{name}.wasm`; it is loaded
  within a second, no restart.
- Try it: `wxhost send --config wxhost.toml --tenant demo --text "hello"` once a tenant's chain
  names `{name}`.
"#
    )
}

mod js;
mod python;

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
                new_plugin(bad, Lang::Rust, dir.path(), &Lang::Rust.default_sdk_path()).is_err(),
                "{bad:?}"
            );
        }
        let rust_sdk = Lang::Rust.default_sdk_path();
        new_plugin("twice", Lang::Rust, dir.path(), &rust_sdk).expect("first");
        let err = new_plugin("twice", Lang::Js, dir.path(), &Lang::Js.default_sdk_path())
            .expect_err("second");
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = new_plugin("nosdk", Lang::Rust, dir.path(), Path::new("/nonexistent"))
            .expect_err("sdk");
        assert!(err.to_string().contains("pass --sdk"), "{err}");
        let err = new_plugin("wrongsdk", Lang::Js, dir.path(), &rust_sdk).expect_err("sdk");
        assert!(
            err.to_string()
                .contains("not the @wxhost/plugin-sdk package"),
            "{err}"
        );
        assert_eq!("js".parse(), Ok(Lang::Js));
        assert_eq!("python".parse(), Ok(Lang::Python));
        assert!("cobol".parse::<Lang>().is_err());
    }
}
