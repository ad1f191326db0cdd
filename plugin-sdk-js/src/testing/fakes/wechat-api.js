import { ComponentError, host } from '../state.js';

export function sendCustom(toUser, message) {
  host('wechat-api').customMessages.push({ toUser, message });
}

export function sendTemplate(message) {
  const templates = host('wechat-api').templates;
  templates.push(message);
  return BigInt(templates.length);
}

export function call(method, path, query, body) {
  const state = host('wechat-api');
  state.apiCalls.push({ method, path, query, body });
  const answer = state.apiAnswers.get(path);
  if (answer === undefined) {
    throw new ComponentError({ tag: 'denied', val: `no answer for ${path} in the TestHost` });
  }
  return answer;
}
