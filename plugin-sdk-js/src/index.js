// @wxhost/plugin-sdk: write wxhost plugins in JavaScript. A plugin is an ES module exporting
// `handle = definePlugin(fn)`; `wxhost-build-js` bundles it and builds the component with
// componentize-js against the host's WIT world (`wit/plugin.wit`, unchanged).
//
// Values keep the WIT world's shapes, camelCased as the component bindings give them: a
// message's content and a reply are `{ tag, val }` variants (`Reply.text('hi')` is
// `{ tag: 'text', val: 'hi' }`), so they compare with `deepEqual` and need no conversion.

import {
  config as configHost,
  earlyReply,
  kv as kvHost,
  log as logHost,
  mediaHost,
  rawFields,
  wechatApi,
} from './host.js';

// ---- messages ----

/** A message pushed to the account, with accessors for what plugins read most. */
export class Message {
  /** @param {object} wire the message as the host passes it */
  constructor(wire) {
    const e = wire.envelope;
    /** Who sent it to which account, and when. */
    this.envelope = {
      tenant: e.tenant,
      toUser: e.toUser,
      fromUser: e.fromUser,
      createTime: Number(e.createTime),
      msgId: e.msgId ?? undefined,
    };
    /** The content: `{ tag: 'text', val: { content, bizMsgMenuId } }`, `{ tag: 'event', val }`, … */
    this.content = wire.content;
    this._fields = wire.fields && wire.fields.length > 0 ? wire.fields : undefined;
  }

  /** The sender's openid. */
  get fromUser() {
    return this.envelope.fromUser;
  }

  /** The account's id (`ToUserName`). */
  get toUser() {
    return this.envelope.toUser;
  }

  /** The tenant it was pushed to. */
  get tenant() {
    return this.envelope.tenant;
  }

  /** The text of a text message, else `undefined`. */
  text() {
    return this.content.tag === 'text' ? this.content.val.content : undefined;
  }

  /** The event of an event push (`{ tag: 'subscribe', val }`, …), else `undefined`. */
  event() {
    return this.content.tag === 'event' ? this.content.val : undefined;
  }

  /**
   * A raw XML field by its path (`EventKey`, `ScanCodeInfo/ScanResult`), as WeChat sent it;
   * fetched from the host the first time a field is asked for.
   */
  field(path) {
    if (this._fields === undefined) {
      this._fields = rawFields.get();
    }
    return this._fields.find((f) => f.path === path)?.value;
  }
}

// ---- replies and outcomes ----

/** WeChat's limit on a text reply, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 2048;
/** WeChat's limit on the articles of a news reply. */
export const MAX_ARTICLES = 8;
/**
 * The largest reply, as {@link encodedLen} measures it: 16 KiB (the Rust SDK's
 * `MAX_REPLY_BYTES`). Any text reply fits, and a news reply of 8 articles of ordinary length.
 */
export const MAX_REPLY_BYTES = 16 * 1024;
/** The host's caps on reply fields, in UTF-8 bytes (the same as the Rust SDK's). */
export const FIELD_LIMITS = Object.freeze({
  content: MAX_TEXT_BYTES,
  title: 256,
  description: 1024,
  picUrl: 2048,
  url: 2048,
  musicUrl: 2048,
  hqMusicUrl: 2048,
  mediaId: 128,
  thumbMediaId: 128,
  kfAccount: 64,
});

const REPLY_TAGS = new Set([
  'text',
  'image',
  'voice',
  'video',
  'music',
  'news',
  'transfer-customer-service',
]);

/** Builders of passive replies. */
export const Reply = Object.freeze({
  /** A text reply. */
  text: (content) => ({ tag: 'text', val: String(content) }),
  /** An image reply (a `media_id` of uploaded material). */
  image: (mediaId) => ({ tag: 'image', val: mediaId }),
  /** A voice reply. */
  voice: (mediaId) => ({ tag: 'voice', val: mediaId }),
  /** A video reply. */
  video: (mediaId, { title = '', description = '' } = {}) => ({
    tag: 'video',
    val: { mediaId, title, description },
  }),
  /** A music reply; `thumbMediaId` is required. */
  music: ({ thumbMediaId, title = '', description = '', musicUrl = '', hqMusicUrl = '' }) => ({
    tag: 'music',
    val: { title, description, musicUrl, hqMusicUrl, thumbMediaId },
  }),
  /** A news reply of 1 to 8 articles (see {@link article}). */
  news: (articles) => ({ tag: 'news', val: [...articles] }),
  /** Hands the conversation to customer service (to one account, if given). */
  transferCustomerService: (kfAccount) => ({
    tag: 'transfer-customer-service',
    val: kfAccount ?? undefined,
  }),
});

/** An article of a news reply. */
export function article(title, url, { description = '', picUrl = '' } = {}) {
  return { title, description, picUrl, url };
}

/** What a plugin decided: a reply, handled (no reply, stop the chain), or pass (next plugin). */
export const Outcome = Object.freeze({
  reply: (reply) => ({ tag: 'reply', val: reply }),
  handled: () => ({ tag: 'handled' }),
  pass: () => ({ tag: 'pass' }),
});

const encoder = new TextEncoder();
const utf8Bytes = (s) => encoder.encode(s).length;
// An ASCII control other than tab, newline and return, or U+FFFE/U+FFFF: XML cannot carry them.
const INVALID_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

/** Why a reply breaks WeChat's rules (the host would refuse it as the plugin's error). */
export class ReplyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ReplyError';
  }
}

function checkField(name, value, { required = false } = {}) {
  if (typeof value !== 'string') {
    throw new ReplyError(`reply field \`${name}\` must be a string, got ${typeof value}`);
  }
  if (required && value.length === 0) {
    throw new ReplyError(`reply field \`${name}\` must not be empty`);
  }
  if (INVALID_XML_CHAR.test(value)) {
    throw new ReplyError(
      `reply field \`${name}\` contains a character XML cannot carry (a control character)`,
    );
  }
  const len = utf8Bytes(value);
  const limit = FIELD_LIMITS[name];
  if (limit !== undefined && len > limit) {
    throw new ReplyError(`reply field \`${name}\` of ${len} bytes exceeds the ${limit}-byte limit`);
  }
}

/** Checks `reply` against WeChat's rules and the host's caps; throws a {@link ReplyError}. */
export function validateReply(reply) {
  if (reply === null || typeof reply !== 'object' || !REPLY_TAGS.has(reply.tag)) {
    throw new ReplyError(`not a reply: ${describe(reply)}`);
  }
  const v = reply.val;
  switch (reply.tag) {
    case 'text': {
      const len = typeof v === 'string' ? utf8Bytes(v) : 0;
      if (len > MAX_TEXT_BYTES) {
        throw new ReplyError(`text reply of ${len} bytes exceeds WeChat's 2048-byte limit`);
      }
      checkField('content', v);
      break;
    }
    case 'image':
    case 'voice':
      checkField('mediaId', v, { required: true });
      break;
    case 'video':
      checkField('mediaId', v.mediaId, { required: true });
      checkField('title', v.title);
      checkField('description', v.description);
      break;
    case 'music':
      checkField('thumbMediaId', v.thumbMediaId, { required: true });
      for (const name of ['title', 'description', 'musicUrl', 'hqMusicUrl']) {
        checkField(name, v[name]);
      }
      break;
    case 'news':
      if (!Array.isArray(v) || v.length === 0 || v.length > MAX_ARTICLES) {
        throw new ReplyError(
          `news reply has ${Array.isArray(v) ? v.length : 0} articles; WeChat accepts 1 to 8`,
        );
      }
      for (const a of v) {
        for (const name of ['title', 'description', 'picUrl', 'url']) {
          checkField(name, a[name]);
        }
      }
      break;
    case 'transfer-customer-service':
      if (v !== undefined && v !== null) {
        checkField('kfAccount', v);
      }
      break;
  }
  const len = encodedLen(reply);
  if (len > MAX_REPLY_BYTES) {
    throw new ReplyError(`reply of ${len} bytes exceeds the ${MAX_REPLY_BYTES}-byte limit`);
  }
}

/**
 * The bytes of a valid reply's own XML as the host encodes it: its `MsgType` and its body,
 * without the `<xml>` root and the addressing the host writes. {@link MAX_REPLY_BYTES} caps it.
 */
export function encodedLen(reply) {
  // `<name>` + inner + `</name>`; a leaf's text in CDATA, each `]]>` splitting it (12 bytes more).
  const element = (name, inner) => 2 * name.length + 5 + inner;
  const leaf = (name, text) =>
    element(name, 12 + utf8Bytes(text) + 12 * (text.split(']]>').length - 1));
  const group = (name, leaves) =>
    element(name, 0) + leaves.reduce((sum, [l, t]) => sum + leaf(l, t), 0);
  const v = reply.val;
  const msgType = reply.tag === 'transfer-customer-service' ? 'transfer_customer_service' : reply.tag;
  let body;
  switch (reply.tag) {
    case 'text':
      body = leaf('Content', v);
      break;
    case 'image':
      body = group('Image', [['MediaId', v]]);
      break;
    case 'voice':
      body = group('Voice', [['MediaId', v]]);
      break;
    case 'video':
      body = group('Video', [['MediaId', v.mediaId], ['Title', v.title], ['Description', v.description]]);
      break;
    case 'music':
      body = group('Music', [
        ['Title', v.title],
        ['Description', v.description],
        ['MusicUrl', v.musicUrl],
        ['HQMusicUrl', v.hqMusicUrl],
        ['ThumbMediaId', v.thumbMediaId],
      ]);
      break;
    case 'news':
      body =
        element('ArticleCount', String(v.length).length) +
        element('Articles', 0) +
        v.reduce(
          (sum, a) =>
            sum +
            group('item', [['Title', a.title], ['Description', a.description], ['PicUrl', a.picUrl], ['Url', a.url]]),
          0,
        );
      break;
    default:
      body = v === undefined || v === null ? 0 : group('TransInfo', [['KfAccount', v]]);
  }
  return leaf('MsgType', msgType) + body;
}

function describe(value) {
  try {
    return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * The outcome a handler's return value stands for: a reply (from {@link Reply}), an
 * {@link Outcome}, or `undefined`/`null` (pass). Anything else is an error.
 */
export function toOutcome(value) {
  if (value === undefined || value === null) {
    return Outcome.pass();
  }
  if (typeof value === 'object' && REPLY_TAGS.has(value.tag)) {
    validateReply(value);
    return Outcome.reply(value);
  }
  if (typeof value === 'object' && value.tag === 'reply') {
    validateReply(value.val);
    return value;
  }
  if (typeof value === 'object' && (value.tag === 'handled' || value.tag === 'pass')) {
    return { tag: value.tag };
  }
  throw new Error(
    `a plugin returns a Reply, an Outcome or nothing; it returned ${describe(value)}`,
  );
}

/** The message an exception carries, as the host reports the plugin's error. */
function errorMessage(e) {
  if (e instanceof Error) {
    return e.message ? `${e.name}: ${e.message}` : e.name;
  }
  return typeof e === 'string' ? e : describe(e);
}

/**
 * Makes `fn(message)` the plugin: export the result as `handle`. `fn` may be async; it returns
 * a reply, an outcome or nothing (pass); what it throws is reported as the plugin's error,
 * with its message.
 *
 *     export const handle = definePlugin((msg) => Reply.text(`echo: ${msg.text()}`));
 */
export function definePlugin(fn) {
  const handle = async (wire) => {
    try {
      return toOutcome(await fn(new Message(wire)));
    } catch (e) {
      // The component's `result<outcome, string>`: a thrown string is its error.
      throw errorMessage(e);
    }
  };
  handle.plugin = fn;
  return handle;
}

/**
 * Answers the push now with `reply` while the plugin goes on working; what the plugin then
 * returns is delivered late (as a customer-service message). Once per message.
 */
export function replyEarly(reply) {
  validateReply(reply);
  try {
    earlyReply.send(reply);
  } catch (e) {
    throw new Error(`early reply refused: ${payloadOf(e)}`);
  }
}

function payloadOf(e) {
  return e && typeof e === 'object' && 'payload' in e ? e.payload : e;
}

// ---- kv ----

/**
 * A kv call failed. `kind`: `key-too-long`, `value-too-large`, `quota-exceeded`,
 * `not-a-number`, `overflow` or `unavailable`; `detail` the limit or the reason, if any.
 */
export class KvError extends Error {
  constructor(kind, detail) {
    super(detail === undefined ? `kv: ${kind}` : `kv: ${kind} (${detail})`);
    this.name = 'KvError';
    this.kind = kind;
    this.detail = detail;
  }
}

function kvCall(f) {
  try {
    return f();
  } catch (e) {
    const payload = payloadOf(e);
    if (payload && typeof payload === 'object' && typeof payload.tag === 'string') {
      throw new KvError(payload.tag, payload.val);
    }
    throw e;
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const bytesOf = (value) => (typeof value === 'string' ? encoder.encode(value) : value);

/** The plugin's own key-value store (per tenant and plugin), kept by the host. */
export const kv = Object.freeze({
  /** The value of `key` as bytes, or `undefined`. */
  get: (key) => kvCall(() => kvHost.get(key)) ?? undefined,
  /** The value of `key` as UTF-8 text, or `undefined`. */
  getString(key) {
    const bytes = kv.get(key);
    return bytes === undefined ? undefined : decoder.decode(bytes);
  },
  /** The value of `key` parsed as JSON, or `undefined`. */
  getJson(key) {
    const text = kv.getString(key);
    return text === undefined ? undefined : JSON.parse(text);
  },
  /** Sets `key` to `value` (a string or bytes), forgotten after `ttlSecs` if given. */
  set(key, value, { ttlSecs } = {}) {
    kvCall(() => kvHost.set(key, bytesOf(value), ttlSecs));
  },
  /** Sets `key` to `value` as JSON. */
  setJson(key, value, options) {
    kv.set(key, JSON.stringify(value), options);
  },
  /** Deletes `key`; whether it was there. */
  delete: (key) => kvCall(() => kvHost.delete(key)),
  /** Adds `delta` (default 1) to the integer at `key` (0 if absent), atomically; the new value. */
  increment: (key, delta = 1) => Number(kvCall(() => kvHost.increment(key, BigInt(delta)))),
});

// ---- settings ----

/** The plugin's settings (`settings = { … }` in the tenant's config). */
export const config = Object.freeze({
  /** The setting `key`, parsed from its JSON, or `undefined`. */
  get(key) {
    const value = configHost.get(key);
    return value === undefined || value === null ? undefined : JSON.parse(value);
  },
  /** Every setting, as an object. */
  getAll: () => JSON.parse(configHost.getAll()),
});

// ---- logging ----

function logAt(level) {
  return (message) => logHost.log(level, String(message));
}

/** Lines in the host's log, tagged with the tenant and plugin (one line each, rate-limited). */
export const log = Object.freeze({
  trace: logAt('trace'),
  debug: logAt('debug'),
  info: logAt('info'),
  warn: logAt('warn'),
  error: logAt('error'),
});

// ---- the WeChat API ----

/**
 * A WeChat API call failed. `kind`: `denied` (not granted), `wechat` (WeChat's error: `code`),
 * `invalid` (a bad request) or `unavailable`.
 */
export class WechatError extends Error {
  constructor(kind, message, code) {
    super(code === undefined ? `wechat ${kind}: ${message}` : `wechat error ${code}: ${message}`);
    this.name = 'WechatError';
    this.kind = kind;
    this.code = code;
  }
}

function apiCall(f) {
  try {
    return f();
  } catch (e) {
    const payload = payloadOf(e);
    if (payload && typeof payload === 'object' && typeof payload.tag === 'string') {
      if (payload.tag === 'wechat') {
        throw new WechatError('wechat', payload.val.message, Number(payload.val.code));
      }
      throw new WechatError(payload.tag, String(payload.val));
    }
    throw e;
  }
}

/** Builders of customer-service messages. */
export const CustomMessage = Object.freeze({
  text: (content) => ({ tag: 'text', val: String(content) }),
  image: (mediaId) => ({ tag: 'image', val: mediaId }),
  voice: (mediaId) => ({ tag: 'voice', val: mediaId }),
  video: (mediaId, { thumbMediaId = '', title = '', description = '' } = {}) => ({
    tag: 'video',
    val: { mediaId, thumbMediaId, title, description },
  }),
  news: (article) => ({ tag: 'news', val: article }),
  miniProgramPage: ({ title, appId, pagePath, thumbMediaId }) => ({
    tag: 'mini-program-page',
    val: { title, appId, pagePath, thumbMediaId },
  }),
});

/** The account's WeChat API, as far as the tenant grants it (`wechat-api`, `api_paths`). */
export const wechat = Object.freeze({
  /** Sends a customer-service message to `toUser` (default: the message's sender). */
  sendCustom(message, toUser) {
    apiCall(() => wechatApi.sendCustom(toUser ?? undefined, message));
  },
  /** Sends a text customer-service message to `toUser` (default: the sender). */
  sendText(text, toUser) {
    wechat.sendCustom(CustomMessage.text(text), toUser);
  },
  /**
   * Sends a template message; `data` is `{ name: value }` or `{ name: { value, color } }`.
   * Returns WeChat's msgid.
   */
  sendTemplate({ templateId, data = {}, toUser, url, miniProgram, clientMsgId }) {
    const fields = Object.entries(data).map(([name, v]) =>
      typeof v === 'object' && v !== null
        ? { name, value: String(v.value), color: v.color ?? undefined }
        : { name, value: String(v), color: undefined },
    );
    return apiCall(() =>
      wechatApi.sendTemplate({
        toUser: toUser ?? undefined,
        templateId,
        url: url ?? undefined,
        miniProgram: miniProgram ?? undefined,
        data: fields,
        clientMsgId: clientMsgId ?? undefined,
      }),
    );
  },
  /**
   * Calls an allow-listed API path (`menu/get`, …) with the access token added by the host;
   * `body` is sent as JSON. Returns the parsed answer.
   */
  call(method, path, { query = {}, body } = {}) {
    const pairs = Object.entries(query).map(([k, v]) => [k, String(v)]);
    const json =
      body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const answer = apiCall(() => wechatApi.call(method, path, pairs, json));
    return JSON.parse(answer);
  },
});

// ---- media material ----

const MEDIA_KINDS = new Set(['image', 'voice', 'video', 'thumb']);

function mediaKind(kind) {
  if (!MEDIA_KINDS.has(kind)) {
    throw new WechatError('invalid', `not a media kind: ${kind} (image, voice, video or thumb)`);
  }
  return kind;
}

function mediaBytes(bytes) {
  return typeof bytes === 'string' ? new TextEncoder().encode(bytes) : Uint8Array.from(bytes);
}

/**
 * The account's media material (`media`): uploads from bytes, downloads, and replies built from
 * bytes. The host checks WeChat's formats and sizes first (reading the format from the bytes)
 * and uploads the same temporary bytes once, until shortly before WeChat drops them (3 days).
 * Kinds: `image` (PNG, JPEG, GIF; ≤ 10 MiB), `voice` (AMR, MP3; ≤ 2 MiB), `video` (MP4;
 * ≤ 10 MiB), `thumb` (JPEG; ≤ 64 KiB). Failures are {@link WechatError}s.
 */
export const media = Object.freeze({
  /** Uploads temporary material; returns its media id. */
  upload: (kind, bytes) => apiCall(() => mediaHost.upload(mediaKind(kind), mediaBytes(bytes))),
  /**
   * Uploads permanent material (a video needs `video: { title, introduction }`); returns
   * `{ mediaId, url }` (`url` for images).
   */
  uploadPermanent: (kind, bytes, video) =>
    apiCall(() =>
      mediaHost.uploadPermanent(mediaKind(kind), mediaBytes(bytes), video ?? undefined),
    ),
  /** Downloads temporary material: `{ contentType, bytes }` (a video: its URL as JSON). */
  download: (mediaId) => apiCall(() => mediaHost.download(mediaId)),
  /** Downloads permanent material: `{ contentType, bytes }` (a video: WeChat's JSON). */
  downloadPermanent: (mediaId) => apiCall(() => mediaHost.downloadPermanent(mediaId)),
  /** A picture reply showing the image `bytes`. */
  imageReply: (bytes) => Reply.image(media.upload('image', bytes)),
  /** A voice reply playing `bytes` (AMR or MP3). */
  voiceReply: (bytes) => Reply.voice(media.upload('voice', bytes)),
  /** A video reply playing the MP4 `bytes`. */
  videoReply: (bytes, { title = '', description = '' } = {}) =>
    Reply.video(media.upload('video', bytes), { title, description }),
});

// ---- outbound HTTP ----

/**
 * Outbound HTTP through the host (`fetch` itself works too): only to the hosts the tenant
 * grants (`http`, `http_hosts`), within the call's deadline.
 */
export const http = Object.freeze({
  /** GETs `url`: a `Response`. */
  get: (url, init = {}) => fetch(url, { ...init, method: 'GET' }),
  /** POSTs `body` as JSON to `url`: a `Response`. */
  postJson: (url, body, init = {}) =>
    fetch(url, {
      ...init,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(init.headers ?? {}) },
      body: JSON.stringify(body),
    }),
});
