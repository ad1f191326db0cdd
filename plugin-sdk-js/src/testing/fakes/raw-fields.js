import { host } from '../state.js';

export function get() {
  return host('raw-fields').fields;
}
