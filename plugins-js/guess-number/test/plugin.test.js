import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Outcome } from '@wxhost/plugin-sdk';
import { TestHost, textMessage } from '@wxhost/plugin-sdk/testing';

import { handle } from '../src/plugin.js';

async function say(host, text) {
  const outcome = await host.handle(handle, textMessage('o_player', text));
  assert.equal(outcome.tag, 'reply', `${text}: ${JSON.stringify(outcome)}`);
  assert.equal(outcome.val.tag, 'text');
  return outcome.val.val;
}

test('a game is played to the end by bisection', async () => {
  const host = new TestHost().setting('max', 1000);
  assert.match(await say(host, 'guess'), /1 to 1000/);
  assert.equal(host.kvTtl('game:o_player'), 600);
  let [lo, hi] = [1, 1000];
  for (let i = 0; i < 10; i++) {
    const mid = Math.floor((lo + hi) / 2);
    const answer = await say(host, String(mid));
    if (answer.includes('right')) {
      assert.equal(host.kvGet('game:o_player'), undefined, 'finished games are deleted');
      return;
    }
    if (answer.includes('low')) {
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  assert.match(await say(host, String(lo)), /right/);
});

test('numbers without a game and other text pass', async () => {
  const host = new TestHost();
  assert.deepEqual(await host.handle(handle, textMessage('o_player', '42')), Outcome.pass());
  assert.deepEqual(await host.handle(handle, textMessage('o', 'hello')), Outcome.pass());
});
