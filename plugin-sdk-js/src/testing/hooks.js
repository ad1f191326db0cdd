// Node module hooks (registered by `register.js`): the host's imports, `wxhost:plugin/NAME@0.1.x`,
// resolve to the fakes in `fakes/`, so a plugin's code runs natively under `node --test`.
const FAKES = new URL('./fakes/', import.meta.url);
const HOST_IMPORT = /^wxhost:plugin\/([a-z-]+)@0\.1\.\d+$/;

export async function resolve(specifier, context, nextResolve) {
  const match = HOST_IMPORT.exec(specifier);
  if (match) {
    return { url: new URL(`${match[1]}.js`, FAKES).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
