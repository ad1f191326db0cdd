import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Outcome, Reply } from '@wxhost/plugin-sdk';
import { TestHost, eventMessage, textMessage } from '@wxhost/plugin-sdk/testing';

import { handle } from '../src/plugin.js';

test('echoes text', async () => {
  const outcome = await new TestHost().handle(handle, textMessage('o_user', '你好 ]]>'));
  assert.deepEqual(outcome, Outcome.reply(Reply.text('echo: 你好 ]]>')));
});

test('passes on events', async () => {
  const outcome = await new TestHost().handle(handle, eventMessage('o_user', { tag: 'unsubscribe' }));
  assert.deepEqual(outcome, Outcome.pass());
});
