import { ComponentError, host } from '../state.js';

export function send(reply) {
  const early = host('early-reply').earlyReplies;
  if (early.length > 0) {
    throw new ComponentError('this message was already answered');
  }
  early.push(reply);
}
