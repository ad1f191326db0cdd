//! The files of a Python plugin project: a module defining the plugin, a pytest test, and the
//! two scripts its commands run, which make the project's virtualenv (`.venv`, with the SDK's
//! pinned tools and the SDK on its path) the first time.

use std::path::Path;

use super::Lang;

/// The project's files: (path, content).
pub(super) fn files(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("app.py", APP_PY.to_owned()),
        ("tests/test_app.py", TEST_PY.to_owned()),
        ("pyproject.toml", pyproject(name)),
        ("venv.sh", venv_sh(sdk)),
        ("build.sh", build_sh(name)),
        ("test.sh", TEST_SH.to_owned()),
        (".gitignore", "/.venv\n/dist\n__pycache__/\n".to_owned()),
        ("README.md", readme(name)),
    ]
}

const APP_PY: &str = r#""""A wxhost plugin: answers a text message with the configured `prefix` and the text; passes
on everything else (to the next plugin of the chain)."""

from typing import Optional

from wxhost_sdk import Message, Reply, config, export, types


def handle(msg: Message) -> Optional[types.Reply]:
    text = msg.text()
    if text is None:
        return None  # not a text message: let the next plugin try
    prefix = config.get("prefix", "you said")
    return Reply.text(f"{prefix}: {text}")


WitWorld = export(handle)
"#;

const TEST_PY: &str = r#"from wxhost_sdk import Outcome, Reply
from wxhost_sdk.testing import TestHost, text_message

from app import WitWorld


def test_answers_text_with_the_configured_prefix() -> None:
    host = TestHost().setting("prefix", "heard")
    outcome = host.handle(WitWorld, text_message("o_user", "hello"))
    assert outcome == Outcome.reply(Reply.text("heard: hello"))
"#;

fn pyproject(name: &str) -> String {
    format!(
        r#"[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"

[tool.pytest.ini_options]
pythonpath = ["."]
"#
    )
}

/// Makes `.venv` (once): the SDK's pinned tools, and the SDK itself on its path.
fn venv_sh(sdk: &Path) -> String {
    // The path is quoted for the shell.
    let sdk = sdk.display().to_string().replace('\'', r"'\''");
    format!(
        r#"# Sourced by build.sh and test.sh: makes .venv the first time.
sdk='{sdk}'
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$sdk/requirements.lock"
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$sdk" > "$site/wxhost-plugin-sdk.pth"
fi
"#
    )
}

fn build_sh(name: &str) -> String {
    let wasm = Lang::Python.wasm_output(name);
    format!(
        r#"#!/bin/sh
# Builds the component with componentize-py: {wasm}
set -eu
cd "$(dirname "$0")"
. ./venv.sh
.venv/bin/python -m wxhost_sdk.build app.py -o {wasm}
"#
    )
}

const TEST_SH: &str = r#"#!/bin/sh
# Runs the tests natively under pytest, with the SDK's TestHost standing in for the host.
set -eu
cd "$(dirname "$0")"
. ./venv.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
"#;

fn readme(name: &str) -> String {
    let lang = Lang::Python;
    format!(
        r#"# {name}

A wxhost plugin in Python.

- Build: `{build}` (Python 3.11 or later; the first run makes `.venv` with componentize-py)
  builds the component to `{wasm}` (about 20 MB: it carries CPython).
- Test: `{test}` runs `tests/` under pytest, with `TestHost` from `wxhost_sdk.testing` standing
  in for the host (kv, settings, log, the WeChat API); no wasm needed.
- Deploy: copy the component to the host's plugins folder as `{name}.wasm`; it is loaded
  within a second, no restart.
"#,
        build = lang.build_command(),
        test = lang.test_command(),
        wasm = lang.wasm_output(name),
    )
}
