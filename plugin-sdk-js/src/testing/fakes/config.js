import { host } from '../state.js';

export function get(key) {
  const settings = host('config').settings;
  return key in settings ? JSON.stringify(settings[key]) : undefined;
}

export function getAll() {
  return JSON.stringify(host('config').settings);
}
