#!/usr/bin/env node
// wxhost-build-js ENTRY [-o OUT.wasm]: builds a wxhost plugin component from a JavaScript (ES
// module) entry exporting `handle`. The entry and everything it imports (the SDK, npm packages)
// is bundled into one module, the host's imports (`wxhost:plugin/…`) left to the component;
// componentize-js then builds the component against the SDK's copy of the host's WIT world.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { componentize } from '@bytecodealliance/componentize-js';
import { rolldown } from 'rolldown';

const WIT = fileURLToPath(new URL('../wit/', import.meta.url));

const usage = 'usage: wxhost-build-js ENTRY.js [-o OUT.wasm]';
let args;
try {
  args = parseArgs({ allowPositionals: true, options: { out: { type: 'string', short: 'o' } } });
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
if (args.positionals.length !== 1) {
  console.error(usage);
  process.exit(2);
}
const entry = resolve(args.positionals[0]);
const out = resolve(args.values.out ?? `${basename(entry, extname(entry))}.wasm`);

const work = await mkdtemp(join(tmpdir(), 'wxhost-build-js-'));
try {
  const bundle = await rolldown({
    input: entry,
    external: [/^wxhost:/],
    platform: 'neutral',
    logLevel: 'warn',
  });
  const source = join(work, 'plugin.js');
  await bundle.write({ file: source, format: 'esm' });
  await bundle.close();
  const { component } = await componentize({
    sourcePath: source,
    witPath: WIT,
    worldName: 'plugin',
    // The plugin is called, never serves HTTP itself; `fetch` (outgoing HTTP) stays.
    disableFeatures: ['fetch-event'],
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, component);
  console.log(`built ${out} (${(component.length / 1e6).toFixed(1)} MB)`);
} catch (e) {
  console.error(`wxhost-build-js: ${e.message ?? e}`);
  process.exitCode = 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
