// The TestHost the fake imports act for now (one at a time: tests of a file run in order).
let current;

export function install(host) {
  const previous = current;
  current = host;
  return () => {
    current = previous;
  };
}

export function host(what) {
  if (current === undefined) {
    throw new ComponentError({ tag: 'unavailable', val: `no TestHost installed (${what})` });
  }
  return current;
}

/** What a failing import throws in a component: the WIT error value as `payload`. */
export class ComponentError extends Error {
  constructor(payload) {
    // WIT's 64-bit integers are BigInts, which JSON cannot carry as such.
    const bigints = (_key, value) => (typeof value === 'bigint' ? String(value) : value);
    super(typeof payload === 'string' ? payload : JSON.stringify(payload, bigints));
    this.name = 'ComponentError';
    this.payload = payload;
  }
}
