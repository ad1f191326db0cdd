// @wxhost/plugin-sdk/testing: unit-test plugins natively under Node (no wasm). Run the tests with
// `node --import @wxhost/plugin-sdk/register --test`: the host's imports then go to the
// installed TestHost, with fake kv, settings, a log recorder, canned HTTP responses and WeChat
// API answers, and a record of what was sent.
//
//     const host = new TestHost().setting('max', 10);
//     const outcome = await host.handle(handle, textMessage('o_user', 'guess'));
//     assert.deepEqual(outcome, Outcome.reply(Reply.text('…')));

import { install } from './testing/state.js';

const encoder = new TextEncoder();

/** A plugin's error, as the host reports it (the message it threw). */
export class PluginError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PluginError';
  }
}

/** A fake host. `handle` runs a plugin against it as wxhost would. */
export class TestHost {
  constructor() {
    this.settings = {};
    this.kv = new Map();
    this.logs = [];
    this.fields = [];
    this.earlyReplies = [];
    this.customMessages = [];
    this.templates = [];
    this.apiCalls = [];
    this.apiAnswers = new Map();
    this.httpResponses = new Map();
    this.httpRequests = [];
    this.material = new Map();
    this.mediaUploads = 0;
  }

  /** Holds material `mediaId` of `kind` (`image`, `voice`, `video`, `thumb`) for downloads. */
  media(mediaId, kind, bytes) {
    this.material.set(mediaId, { kind, bytes: Uint8Array.from(bytes), permanent: false });
    return this;
  }

  /** Sets the plugin setting `key` (any JSON value). */
  setting(key, value) {
    this.settings[key] = value;
    return this;
  }

  /** Answers GETs and POSTs of `url` with `status` and `body` (other URLs are refused). */
  httpResponse(url, status, body, headers = {}) {
    this.httpResponses.set(url, { status, body, headers });
    return this;
  }

  /** Answers the raw WeChat API `path` with `json` (a string or an object). */
  apiAnswer(path, json) {
    this.apiAnswers.set(path, typeof json === 'string' ? json : JSON.stringify(json));
    return this;
  }

  /** The value at `key` as bytes, or `undefined`. */
  kvGet(key) {
    return this.kv.get(key)?.value;
  }

  /** The value at `key` as text, or `undefined`. */
  kvGetString(key) {
    const value = this.kvGet(key);
    return value === undefined ? undefined : new TextDecoder().decode(value);
  }

  /** The TTL `key` was last set with, or `undefined`. */
  kvTtl(key) {
    return this.kv.get(key)?.ttlSecs;
  }

  /** Puts `value` (a string or bytes) at `key`, as an earlier call would have. */
  kvPut(key, value) {
    this.kv.set(key, {
      value: typeof value === 'string' ? encoder.encode(value) : Uint8Array.from(value),
      ttlSecs: undefined,
    });
    return this;
  }

  /**
   * Runs the plugin's exported `handle` on `message` (a message as the host passes it, from
   * {@link textMessage}, {@link eventMessage} or {@link message}) with this host installed;
   * resolves to its outcome, or rejects with a {@link PluginError} carrying its error.
   */
  async handle(handle, message) {
    const uninstall = install(this);
    const realFetch = globalThis.fetch;
    globalThis.fetch = (input, init) => this.#fetch(input, init);
    // As the host does for a plugin importing `raw-fields`: the message comes without its raw
    // fields, which the plugin fetches when it first reads one.
    this.fields = message.fields ?? [];
    try {
      return await handle({ ...message, fields: [] });
    } catch (e) {
      throw new PluginError(typeof e === 'string' ? e : String(e));
    } finally {
      globalThis.fetch = realFetch;
      uninstall();
    }
  }

  async #fetch(input, init = {}) {
    const url = typeof input === 'string' ? input : String(input.url ?? input);
    const method = (init.method ?? 'GET').toUpperCase();
    this.httpRequests.push({ method, url, body: init.body });
    const canned = this.httpResponses.get(url);
    if (canned === undefined) {
      // What a plugin sees for a host it is not granted.
      throw new TypeError('NetworkError when attempting to fetch resource.');
    }
    const body = typeof canned.body === 'string' ? canned.body : JSON.stringify(canned.body);
    return new Response(body, { status: canned.status, headers: canned.headers });
  }
}

let nextMsgId = 1000n;

/**
 * A message from `fromUser` with `content` (`{ tag, val }`) as the host passes it; `fields` are
 * its raw XML fields (`[{ path, value }]`).
 */
export function message(fromUser, content, { fields = [], msgId, createTime } = {}) {
  nextMsgId += 1n;
  return {
    envelope: {
      tenant: 'test',
      toUser: 'gh_test',
      fromUser,
      createTime: BigInt(createTime ?? Math.floor(Date.now() / 1000)),
      msgId: content.tag === 'event' ? undefined : BigInt(msgId ?? nextMsgId),
    },
    content,
    fields,
  };
}

/** A text message from `fromUser`. */
export function textMessage(fromUser, text, options) {
  return message(fromUser, { tag: 'text', val: { content: text, bizMsgMenuId: undefined } }, options);
}

/** An event push from `fromUser` (`{ tag: 'subscribe', val: { scene, ticket } }`, …). */
export function eventMessage(fromUser, event, options) {
  return message(fromUser, { tag: 'event', val: event }, options);
}
