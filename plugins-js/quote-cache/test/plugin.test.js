import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Outcome, Reply } from '@wxhost/plugin-sdk';
import { PluginError, TestHost, textMessage } from '@wxhost/plugin-sdk/testing';

import { handle, symbol } from '../src/plugin.js';

const SERVICE = 'https://prices.example.com';
const ask = (host, text) => host.handle(handle, textMessage('o_user', text));

test('reads a quote over HTTP once, then from kv', async () => {
  const host = new TestHost()
    .setting('service_url', `${SERVICE}/`)
    .setting('cache_secs', 30)
    .httpResponse(`${SERVICE}/quote?symbol=WX`, 200, { symbol: 'WX', price: 175 });
  assert.deepEqual(await ask(host, 'quote wx'), Outcome.reply(Reply.text('WX: 175')));
  assert.deepEqual(await ask(host, 'QUOTE WX'), Outcome.reply(Reply.text('WX: 175 (cached)')));
  assert.equal(host.httpRequests.length, 1, 'the second answer came from kv');
  assert.equal(host.kvTtl('quote:WX'), 30);
});

test('says what went wrong with the price service, and caches nothing then', async () => {
  const host = new TestHost()
    .setting('service_url', SERVICE)
    .httpResponse(`${SERVICE}/quote?symbol=BAD`, 503, 'down')
    .httpResponse(`${SERVICE}/quote?symbol=ODD`, 200, 'not json');
  assert.deepEqual(await ask(host, 'quote BAD'), Outcome.reply(Reply.text('BAD: the price service answered HTTP 503')));
  assert.deepEqual(await ask(host, 'quote ODD'), Outcome.reply(Reply.text('ODD: the price service answered something unreadable')));
  assert.deepEqual(await ask(host, 'quote GONE'), Outcome.reply(Reply.text('GONE: the price service is unavailable')));
  assert.equal(host.logs.length, 1);
  assert.equal(host.kv.size, 0);
});

test('other texts pass; a missing setting is the plugin\'s error', async () => {
  assert.equal(symbol('quote'), undefined);
  assert.equal(symbol('quote A B'), undefined);
  assert.equal(symbol('quote ABCDEFGHIJKLM'), undefined);
  assert.deepEqual(await ask(new TestHost(), 'hello'), Outcome.pass());
  await assert.rejects(ask(new TestHost(), 'quote WX'), (e) => e instanceof PluginError && /service_url/.test(e.message));
});
