// `guess-number-js`: a per-user number-guessing game whose state lives in kv, as the Rust
// `guess-number` plays it.
//
// `guess` (or `猜数字`) starts a game with a number from 1 to `max` (setting, default 100); each
// number then gets "higher"/"lower" until it is found. A game left alone expires after
// `ttl_secs` (default 600). Other texts pass to the next plugin.
import { Reply, config, definePlugin, kv } from '@wxhost/plugin-sdk';

const key = (msg) => `game:${msg.fromUser}`;

const MASK = (1n << 64n) - 1n;

/** A number in 1..=max derived from the message (the same FNV-1a as the Rust plugin). */
export function pick(msg, max) {
  const id = msg.envelope.msgId === undefined ? 'None' : `Some(${msg.envelope.msgId})`;
  const seed = new TextEncoder().encode(`${msg.fromUser}|${msg.envelope.createTime}|${id}`);
  let h = 0xcbf29ce484222325n;
  for (const b of seed) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK;
  }
  return Number(h % BigInt(Math.max(max, 1))) + 1;
}

export const handle = definePlugin((msg) => {
  const text = msg.text()?.trim();
  if (text === undefined) {
    return undefined;
  }
  const max = config.get('max') ?? 100;
  const ttlSecs = config.get('ttl_secs') ?? 600;
  if (text.toLowerCase() === 'guess' || text === '猜数字') {
    kv.setJson(key(msg), { target: pick(msg, max), tries: 0 }, { ttlSecs });
    return Reply.text(`I picked a number from 1 to ${max}. Your guess?`);
  }
  if (!/^\+?\d+$/.test(text)) {
    return undefined;
  }
  const guess = Number(text);
  const game = kv.getJson(key(msg));
  if (game === undefined) {
    return undefined; // a number, but no game: not ours
  }
  game.tries += 1;
  if (guess === game.target) {
    kv.delete(key(msg));
    return Reply.text(`${guess} is right! Found in ${game.tries} tries.`);
  }
  kv.setJson(key(msg), game, { ttlSecs });
  return Reply.text(guess < game.target ? `${guess} is too low.` : `${guess} is too high.`);
});
