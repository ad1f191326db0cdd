// The fake kv: the host's per-call caps (a key of 256 bytes, a value of 64 KiB), TTLs recorded
// but not expired.
import { ComponentError, host } from '../state.js';

const KEY_BYTES = 256;
const VALUE_BYTES = 64 * 1024;
const encoder = new TextEncoder();

function check(key, value) {
  if (encoder.encode(key).length > KEY_BYTES) {
    throw new ComponentError({ tag: 'key-too-long', val: KEY_BYTES });
  }
  if (value !== undefined && value.length > VALUE_BYTES) {
    throw new ComponentError({ tag: 'value-too-large', val: VALUE_BYTES });
  }
}

function store() {
  return host('kv').kv;
}

export function get(key) {
  check(key);
  const entry = store().get(key);
  return entry === undefined ? undefined : Uint8Array.from(entry.value);
}

export function set(key, value, ttlSecs) {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError('kv.set takes bytes (a Uint8Array)');
  }
  check(key, value);
  store().set(key, { value: Uint8Array.from(value), ttlSecs });
}

function remove(key) {
  check(key);
  return store().delete(key);
}
export { remove as delete };

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

export function increment(key, delta) {
  if (typeof delta !== 'bigint') {
    throw new TypeError('kv.increment takes a BigInt delta, as the component binding does');
  }
  check(key);
  const entry = store().get(key);
  let old = 0n;
  if (entry !== undefined) {
    const text = new TextDecoder().decode(entry.value).trim();
    if (!/^[+-]?\d+$/.test(text)) {
      throw new ComponentError({ tag: 'not-a-number' });
    }
    old = BigInt(text);
  }
  const value = old + delta;
  if (value < I64_MIN || value > I64_MAX) {
    throw new ComponentError({ tag: 'overflow' });
  }
  store().set(key, { value: encoder.encode(value.toString()), ttlSecs: entry?.ttlSecs });
  return value;
}
