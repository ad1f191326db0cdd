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
    super(typeof payload === 'string' ? payload : JSON.stringify(payload));
    this.name = 'ComponentError';
    this.payload = payload;
  }
}
