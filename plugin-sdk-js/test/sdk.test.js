import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CustomMessage,
  KvError,
  Outcome,
  Reply,
  WechatError,
  MAX_REPLY_BYTES,
  article,
  config,
  definePlugin,
  encodedLen,
  http,
  kv,
  log,
  media,
  replyEarly,
  validateReply,
  wechat,
} from '@wxhost/plugin-sdk';
import { PluginError, TestHost, eventMessage, textMessage } from '@wxhost/plugin-sdk/testing';

/** The outcome of running `fn` as a plugin on `msg` in `host`. */
const run = (host, fn, msg = textMessage('o_user', 'hi')) => host.handle(definePlugin(fn), msg);

test('a message exposes its envelope, text, event and raw fields (fetched from the host)', async () => {
  const host = new TestHost();
  const msg = textMessage('o_user', 'hi', {
    msgId: 2n ** 63n + 5n,
    createTime: 1_700_000_000,
    fields: [{ path: 'Content', value: 'hi' }],
  });
  const seen = {};
  await run(
    host,
    (m) => {
      Object.assign(seen, {
        from: m.fromUser,
        to: m.toUser,
        tenant: m.tenant,
        text: m.text(),
        event: m.event(),
        msgId: m.envelope.msgId,
        createTime: m.envelope.createTime,
        content: m.field('Content'),
        missing: m.field('Nope'),
      });
    },
    msg,
  );
  assert.deepEqual(seen, {
    from: 'o_user',
    to: 'gh_test',
    tenant: 'test',
    text: 'hi',
    event: undefined,
    msgId: 2n ** 63n + 5n,
    createTime: 1_700_000_000,
    content: 'hi',
    missing: undefined,
  });
  const click = eventMessage('o_user', { tag: 'click', val: 'MENU_1' });
  const event = await run(host, (m) => Reply.text(`${m.event().tag} ${m.event().val} ${m.text()}`), click);
  assert.deepEqual(event, Outcome.reply(Reply.text('click MENU_1 undefined')));
});

test('a handler returns a reply, an outcome or nothing', async () => {
  const host = new TestHost();
  assert.deepEqual(await run(host, () => Reply.text('x')), Outcome.reply(Reply.text('x')));
  assert.deepEqual(await run(host, () => Outcome.handled()), Outcome.handled());
  assert.deepEqual(await run(host, () => undefined), Outcome.pass());
  assert.deepEqual(await run(host, async () => Reply.image('m1')), Outcome.reply(Reply.image('m1')));
  await assert.rejects(run(host, () => 'a bare string'), /returns a Reply, an Outcome or nothing/);
});

test('what a plugin throws is its error, with its message', async () => {
  const host = new TestHost();
  await assert.rejects(
    run(host, () => {
      throw new Error('boom');
    }),
    (e) => e instanceof PluginError && e.message === 'Error: boom',
  );
  await assert.rejects(
    run(host, async () => {
      throw new RangeError('out of range');
    }),
    { message: 'RangeError: out of range' },
  );
});

test('replies are checked against WeChat\'s rules before they leave', async () => {
  const host = new TestHost();
  await assert.rejects(run(host, () => Reply.text('a'.repeat(2049))), /2049 bytes exceeds WeChat's 2048-byte limit/);
  assert.deepEqual(await run(host, () => Reply.text('字'.repeat(682))), Outcome.reply(Reply.text('字'.repeat(682))));
  await assert.rejects(run(host, () => Reply.text('字'.repeat(683))), /2049 bytes/);
  await assert.rejects(run(host, () => Reply.image('')), /`mediaId` must not be empty/);
  await assert.rejects(run(host, () => Reply.text('bell \u0007')), /character XML cannot carry/);
  await assert.rejects(run(host, () => Reply.news([])), /0 articles/);
  const nine = Array.from({ length: 9 }, (_, i) => article(`t${i}`, 'https://example.com'));
  await assert.rejects(run(host, () => Reply.news(nine)), /9 articles/);
  await assert.rejects(run(host, () => Reply.video('m', { title: 't'.repeat(257) })), /`title` of 257 bytes/);
  assert.doesNotThrow(() =>
    validateReply(Reply.music({ thumbMediaId: 'th', title: 'song', musicUrl: 'https://m' })),
  );
  assert.doesNotThrow(() => validateReply(Reply.transferCustomerService()));
  assert.throws(() => validateReply(Reply.transferCustomerService('k'.repeat(65))), /`kfAccount`/);
});

test('a whole reply is capped at 16 KiB of XML, measured as the host encodes it', async () => {
  // <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>, as the Rust SDK counts.
  assert.equal(encodedLen(Reply.text('hi')), 68);
  assert.equal(encodedLen(Reply.text('a]]>b')) - encodedLen(Reply.text('a>>>b')), 12, 'a split CDATA');
  const long = (i, url) => article(`title ${i}`.padEnd(256, 't'), url, { description: 'd'.repeat(1024) });
  const fits = Array.from({ length: 8 }, (_, i) => long(i, 'https://example.com/'));
  assert.ok(encodedLen(Reply.news(fits)) <= MAX_REPLY_BYTES);
  assert.doesNotThrow(() => validateReply(Reply.news(fits)));
  const big = Array.from({ length: 8 }, (_, i) => long(i, `https://example.com/${'u'.repeat(2000)}`));
  await assert.rejects(
    run(new TestHost(), () => Reply.news(big)),
    new RegExp(`reply of ${encodedLen(Reply.news(big))} bytes exceeds the 16384-byte limit`),
  );
});

test('kv stores bytes, text and JSON, with TTLs, and increments atomically', async () => {
  const host = new TestHost();
  await run(host, () => {
    kv.set('bytes', new Uint8Array([0, 255]));
    kv.set('text', '你好', { ttlSecs: 30 });
    kv.setJson('json', { a: [1, 2] });
    assert.equal(kv.increment('n'), 1);
    assert.equal(kv.increment('n', 41), 42);
    assert.equal(kv.increment('n', -50), -8);
    assert.deepEqual([...kv.get('bytes')], [0, 255]);
    assert.equal(kv.getString('text'), '你好');
    assert.deepEqual(kv.getJson('json'), { a: [1, 2] });
    assert.equal(kv.get('absent'), undefined);
    assert.equal(kv.delete('json'), true);
    assert.equal(kv.delete('json'), false);
  });
  assert.equal(host.kvTtl('text'), 30);
  assert.equal(host.kvGetString('n'), '-8');
});

test('kv failures are KvErrors with their kind', async () => {
  const host = new TestHost().kvPut('word', 'abc').kvPut('max', '9223372036854775807');
  await run(host, () => {
    assert.throws(() => kv.set('k'.repeat(257), 'v'), (e) => e instanceof KvError && e.kind === 'key-too-long' && e.detail === 256);
    assert.throws(() => kv.set('k', 'v'.repeat(64 * 1024 + 1)), { kind: 'value-too-large' });
    assert.throws(() => kv.increment('word'), { kind: 'not-a-number', message: 'kv: not-a-number' });
    assert.throws(() => kv.increment('max'), { kind: 'overflow' });
  });
  await assert.rejects(
    run(host, () => kv.increment('word')),
    { message: 'KvError: kv: not-a-number' },
    'an uncaught kv error is the plugin\'s error',
  );
});

test('settings are JSON values; log lines are recorded', async () => {
  const host = new TestHost().setting('max', 10).setting('names', ['a', 'b']);
  await run(host, () => {
    assert.equal(config.get('max'), 10);
    assert.deepEqual(config.get('names'), ['a', 'b']);
    assert.equal(config.get('absent'), undefined);
    assert.deepEqual(config.getAll(), { max: 10, names: ['a', 'b'] });
    log.info('hello');
    log.warn(42);
  });
  assert.deepEqual(host.logs, [
    ['info', 'hello'],
    ['warn', '42'],
  ]);
});

test('the WeChat API: customer-service and template messages, raw calls, errors', async () => {
  const host = new TestHost().apiAnswer('cgi-bin/menu/get', { menu: { button: [] } });
  await run(host, () => {
    wechat.sendText('late');
    wechat.sendCustom(CustomMessage.image('m1'), 'o_other');
    assert.equal(wechat.sendTemplate({ templateId: 'T1', data: { thing1: 'x', amount: { value: 5, color: '#f00' } } }), 1n);
    assert.deepEqual(wechat.call('get', 'cgi-bin/menu/get', { query: { a: 1 } }), { menu: { button: [] } });
    assert.throws(
      () => wechat.call('post', 'cgi-bin/other', { body: { x: 1 } }),
      (e) => e instanceof WechatError && e.kind === 'denied',
    );
  });
  assert.deepEqual(host.customMessages, [
    { toUser: undefined, message: CustomMessage.text('late') },
    { toUser: 'o_other', message: CustomMessage.image('m1') },
  ]);
  assert.deepEqual(host.templates[0].data, [
    { name: 'thing1', value: 'x', color: undefined },
    { name: 'amount', value: '5', color: '#f00' },
  ]);
  assert.deepEqual(host.apiCalls[0], { method: 'get', path: 'cgi-bin/menu/get', query: [['a', '1']], body: undefined });
  assert.equal(host.apiCalls[1].body, '{"x":1}');
});

test('media: replies from bytes upload identical bytes once; downloads return them', async () => {
  const png = [0x89, 0x50, 0x4e, 0x47, 1, 2, 3];
  const host = new TestHost().media('m_video', 'video', [0, 0, 0]);
  await run(host, () => {
    assert.deepEqual(media.imageReply(png), Reply.image('media-1'));
    assert.deepEqual(media.imageReply(Uint8Array.from(png)), Reply.image('media-1'));
    assert.deepEqual(media.voiceReply(png), Reply.voice('media-2'));
    const file = media.download('media-1');
    assert.equal(file.contentType, 'image/jpeg');
    assert.deepEqual([...file.bytes], png);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(media.download('m_video').bytes)), {
      video_url: 'https://mmbiz.test/m_video',
    });
    const permanent = media.uploadPermanent('video', png, { title: 't', introduction: 'i' });
    assert.equal(permanent.mediaId, 'media-3');
    assert.throws(
      () => media.download('nope'),
      (e) => e instanceof WechatError && e.kind === 'wechat' && e.code === 40007,
    );
    assert.throws(
      () => media.upload('gif', png),
      (e) => e instanceof WechatError && e.kind === 'invalid',
    );
  });
  assert.equal(host.mediaUploads, 3);
});

test('outbound HTTP answers from canned responses only', async () => {
  const host = new TestHost().httpResponse('https://api.example.com/q', 200, { price: 7 });
  const outcome = await run(host, async () => {
    const answer = await http.get('https://api.example.com/q');
    const posted = await http.postJson('https://api.example.com/q', { a: 1 });
    await assert.rejects(fetch('https://elsewhere.example.com/'), TypeError);
    return Reply.text(`${answer.status} ${(await answer.json()).price} ${posted.status}`);
  });
  assert.deepEqual(outcome, Outcome.reply(Reply.text('200 7 200')));
  assert.deepEqual(host.httpRequests.map((r) => `${r.method} ${r.url}`), [
    'GET https://api.example.com/q',
    'POST https://api.example.com/q',
    'GET https://elsewhere.example.com/',
  ]);
  assert.equal(host.httpRequests[1].body, '{"a":1}');
});

test('an early reply is sent once per message', async () => {
  const host = new TestHost();
  const outcome = await run(host, () => {
    replyEarly(Reply.text('working on it'));
    assert.throws(() => replyEarly(Reply.text('again')), /early reply refused: this message was already answered/);
    return Reply.text('done');
  });
  assert.deepEqual(host.earlyReplies, [Reply.text('working on it')]);
  assert.deepEqual(outcome, Outcome.reply(Reply.text('done')));
});

test('outside a TestHost the host imports are unavailable, not silently faked', () => {
  assert.throws(() => kv.get('k'), { kind: 'unavailable' });
});

test('the SDK builds against the host\'s own WIT world', async () => {
  const { readFile } = await import('node:fs/promises');
  const sdk = await readFile(new URL('../wit/plugin.wit', import.meta.url), 'utf8');
  const host = await readFile(new URL('../../wit/plugin.wit', import.meta.url), 'utf8');
  assert.equal(sdk, host, 'plugin-sdk-js/wit/plugin.wit must be a copy of wit/plugin.wit');
});
