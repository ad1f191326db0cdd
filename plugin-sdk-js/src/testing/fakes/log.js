import { host } from '../state.js';

export function log(level, message) {
  host('log').logs.push([level, message]);
}
