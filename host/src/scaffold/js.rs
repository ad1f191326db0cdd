//! The files of a JavaScript plugin project: an npm package depending on `@wxhost/plugin-sdk`
//! from the SDK's folder (installed as a package, `install-links`, so its tools land in the
//! project's own `node_modules`), an ES module plugin, and a test run under Node.

use std::path::Path;

use super::Lang;

/// The project's files: (path, content).
pub(super) fn files(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("package.json", package_json(name, sdk)),
        // The SDK comes from a folder: install it as a package would be, with its tools.
        (".npmrc", "install-links=true\n".to_owned()),
        (".gitignore", "/node_modules\n/dist\n".to_owned()),
        ("src/plugin.js", PLUGIN_JS.to_owned()),
        ("test/plugin.test.js", TEST_JS.to_owned()),
        ("README.md", readme(name)),
    ]
}

fn package_json(name: &str, sdk: &Path) -> String {
    // `name` is a valid plugin name (a-z 0-9 - _); the path is quoted as JSON.
    let sdk = serde_json::Value::String(format!("file:{}", sdk.display()));
    let wasm = Lang::Js.wasm_output(name);
    format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "description": "A wxhost plugin",
  "type": "module",
  "scripts": {{
    "build": "wxhost-build-js src/plugin.js -o {wasm}",
    "test": "node --import @wxhost/plugin-sdk/register --test"
  }},
  "dependencies": {{
    "@wxhost/plugin-sdk": {sdk}
  }}
}}
"#
    )
}

const PLUGIN_JS: &str = r#"// A wxhost plugin: answers a text message with the configured `prefix` and the text; passes
// on everything else (to the next plugin of the chain).
// @ts-check
import { Reply, config, definePlugin } from '@wxhost/plugin-sdk';

export const handle = definePlugin((msg) => {
  const text = msg.text();
  if (text === undefined) {
    return undefined; // not a text message: let the next plugin try
  }
  const prefix = config.get('prefix') ?? 'you said';
  return Reply.text(`${prefix}: ${text}`);
});
"#;

const TEST_JS: &str = r#"import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Outcome, Reply } from '@wxhost/plugin-sdk';
import { TestHost, textMessage } from '@wxhost/plugin-sdk/testing';

import { handle } from '../src/plugin.js';

test('answers text with the configured prefix', async () => {
  const host = new TestHost().setting('prefix', 'heard');
  const outcome = await host.handle(handle, textMessage('o_user', 'hello'));
  assert.deepEqual(outcome, Outcome.reply(Reply.text('heard: hello')));
});
"#;

fn readme(name: &str) -> String {
    let lang = Lang::Js;
    format!(
        r#"# {name}

A wxhost plugin in JavaScript.

- Build: `{build}` (Node.js 20 or later) bundles `src/plugin.js` and builds the component
  with componentize-js, to `{wasm}` (about 12 MB: it carries its JavaScript engine).
- Test: `{test}` runs the tests in `test/` under Node, with `TestHost` from
  `@wxhost/plugin-sdk/testing` standing in for the host (kv, settings, log, HTTP, the WeChat
  API); no wasm needed.
- Deploy: copy the component to the host's plugins folder as `{name}.wasm`; it is loaded
  within a second, no restart. Give it `limits = {{ memory_bytes = 33554432 }}` or more (the
  default, 32 MiB, fits a JavaScript plugin).
"#,
        build = lang.build_command(),
        test = lang.test_command(),
        wasm = lang.wasm_output(name),
    )
}
