// Types of @wxhost/plugin-sdk: the host's WIT world (`wit/plugin.wit`) as the component
// bindings give it to JavaScript (records as camelCased objects, variants as `{ tag, val }`,
// `u64`/`s64` as `bigint`, `option<T>` as `T | undefined`), and the SDK around it.

/** Who sent the message to which account, and when. */
export interface Envelope {
  tenant: string;
  toUser: string;
  fromUser: string;
  /** Seconds since the Unix epoch. */
  createTime: number;
  /** The message's id (events have none). */
  msgId: bigint | undefined;
}

export interface Field {
  path: string;
  value: string;
}

export interface Text {
  content: string;
  bizMsgMenuId: string | undefined;
}
export interface Image {
  picUrl: string;
  mediaId: string;
}
export interface Voice {
  mediaId: string;
  format: string;
  recognition: string | undefined;
}
export interface Video {
  mediaId: string;
  thumbMediaId: string;
}
export interface Location {
  latitude: number;
  longitude: number;
  scale: number;
  label: string;
}
export interface Link {
  title: string;
  description: string;
  url: string;
}
export interface File {
  title: string;
  description: string;
  fileKey: string;
  fileMd5: string;
  fileTotalLen: bigint | undefined;
}
export interface MiniProgramPage {
  title: string;
  appId: string;
  pagePath: string;
  thumbUrl: string;
  thumbMediaId: string;
}

export interface SubscribeMsgItem {
  templateId: string;
  status: string;
  popupScene: string | undefined;
}
export interface SubscribeMsgSentItem {
  templateId: string;
  msgId: string;
  errorCode: string;
  errorStatus: string;
}

export type Event =
  | { tag: 'subscribe'; val: { scene: string | undefined; ticket: string | undefined } }
  | { tag: 'unsubscribe' }
  | { tag: 'scan'; val: { scene: string; ticket: string | undefined } }
  | { tag: 'location'; val: { latitude: number; longitude: number; precision: number } }
  | { tag: 'click'; val: string }
  | { tag: 'view'; val: { url: string; menuId: string | undefined } }
  | {
      tag: 'scan-code';
      val: { waitsForReply: boolean; key: string; scanType: string; scanResult: string };
    }
  | {
      tag: 'pictures';
      val: { source: string; key: string; count: number | undefined; md5s: string[] };
    }
  | {
      tag: 'location-select';
      val: {
        key: string;
        latitude: number;
        longitude: number;
        scale: number;
        label: string;
        poiName: string | undefined;
      };
    }
  | { tag: 'view-mini-program'; val: { pagePath: string; menuId: string | undefined } }
  | { tag: 'template-send-job-finish'; val: { msgId: bigint | undefined; status: string } }
  | {
      tag: 'mass-send-job-finish';
      val: {
        msgId: bigint | undefined;
        status: string;
        totalCount: bigint | undefined;
        filterCount: bigint | undefined;
        sentCount: bigint | undefined;
        errorCount: bigint | undefined;
      };
    }
  | { tag: 'subscribe-msg-popup'; val: SubscribeMsgItem[] }
  | { tag: 'subscribe-msg-change'; val: SubscribeMsgItem[] }
  | { tag: 'subscribe-msg-sent'; val: SubscribeMsgSentItem[] }
  | { tag: 'other'; val: { name: string; key: string | undefined } };

export type Content =
  | { tag: 'text'; val: Text }
  | { tag: 'image'; val: Image }
  | { tag: 'voice'; val: Voice }
  | { tag: 'video'; val: Video }
  | { tag: 'short-video'; val: Video }
  | { tag: 'location'; val: Location }
  | { tag: 'link'; val: Link }
  | { tag: 'file'; val: File }
  | { tag: 'mini-program-page'; val: MiniProgramPage }
  | { tag: 'event'; val: Event }
  | { tag: 'other'; val: string };

/** A message as the host passes it to `handle`. */
export interface WireMessage {
  envelope: Omit<Envelope, 'createTime'> & { createTime: bigint };
  content: Content;
  fields: Field[];
}

/** A message pushed to the account, with accessors for what plugins read most. */
export class Message {
  constructor(wire: WireMessage);
  readonly envelope: Envelope;
  readonly content: Content;
  /** The sender's openid. */
  readonly fromUser: string;
  /** The account's id (`ToUserName`). */
  readonly toUser: string;
  /** The tenant it was pushed to. */
  readonly tenant: string;
  /** The text of a text message. */
  text(): string | undefined;
  /** The event of an event push. */
  event(): Event | undefined;
  /** A raw XML field by its path (`EventKey`, `ScanCodeInfo/ScanResult`). */
  field(path: string): string | undefined;
}

export interface Article {
  title: string;
  description: string;
  picUrl: string;
  url: string;
}

export type Reply =
  | { tag: 'text'; val: string }
  | { tag: 'image'; val: string }
  | { tag: 'voice'; val: string }
  | { tag: 'video'; val: { mediaId: string; title: string; description: string } }
  | {
      tag: 'music';
      val: {
        title: string;
        description: string;
        musicUrl: string;
        hqMusicUrl: string;
        thumbMediaId: string;
      };
    }
  | { tag: 'news'; val: Article[] }
  | { tag: 'transfer-customer-service'; val: string | undefined };

export type Outcome = { tag: 'reply'; val: Reply } | { tag: 'handled' } | { tag: 'pass' };

export const MAX_TEXT_BYTES: 2048;
export const MAX_ARTICLES: 8;
/** The largest reply, as `encodedLen` measures it: 16 KiB. */
export const MAX_REPLY_BYTES: 16384;
export const FIELD_LIMITS: Readonly<Record<string, number>>;

export const Reply: {
  text(content: string): Reply;
  image(mediaId: string): Reply;
  voice(mediaId: string): Reply;
  video(mediaId: string, options?: { title?: string; description?: string }): Reply;
  music(music: {
    thumbMediaId: string;
    title?: string;
    description?: string;
    musicUrl?: string;
    hqMusicUrl?: string;
  }): Reply;
  news(articles: Iterable<Article>): Reply;
  transferCustomerService(kfAccount?: string): Reply;
};

export function article(
  title: string,
  url: string,
  options?: { description?: string; picUrl?: string },
): Article;

export const Outcome: {
  reply(reply: Reply): Outcome;
  handled(): Outcome;
  pass(): Outcome;
};

/** Why a reply breaks WeChat's rules. */
export class ReplyError extends Error {}
/** Throws a `ReplyError` unless `reply` keeps WeChat's rules and the host's caps. */
export function validateReply(reply: Reply): void;
/** The bytes of a valid reply's own XML as the host encodes it (`MsgType` and body). */
export function encodedLen(reply: Reply): number;
/** What a handler returns: a reply, an outcome, or nothing (pass). */
export type HandlerResult = Reply | Outcome | undefined | null | void;
export function toOutcome(value: HandlerResult): Outcome;

/** The plugin's `handle`, as exported to the host. */
export interface Handle {
  (msg: WireMessage): Promise<Outcome>;
  readonly plugin: (msg: Message) => HandlerResult | Promise<HandlerResult>;
}
/** Makes `fn` the plugin: `export const handle = definePlugin(fn)`. */
export function definePlugin(
  fn: (msg: Message) => HandlerResult | Promise<HandlerResult>,
): Handle;

/** Answers now with `reply`; what the plugin returns afterwards is delivered late. */
export function replyEarly(reply: Reply): void;

export type KvErrorKind =
  | 'key-too-long'
  | 'value-too-large'
  | 'quota-exceeded'
  | 'not-a-number'
  | 'overflow'
  | 'unavailable';
export class KvError extends Error {
  readonly kind: KvErrorKind;
  /** The limit (`key-too-long`, `value-too-large`) or the reason, if any. */
  readonly detail: number | string | undefined;
}

export const kv: {
  get(key: string): Uint8Array | undefined;
  getString(key: string): string | undefined;
  getJson<T = unknown>(key: string): T | undefined;
  set(key: string, value: string | Uint8Array, options?: { ttlSecs?: number }): void;
  setJson(key: string, value: unknown, options?: { ttlSecs?: number }): void;
  delete(key: string): boolean;
  increment(key: string, delta?: number): number;
};

export const config: {
  get<T = unknown>(key: string): T | undefined;
  getAll(): Record<string, unknown>;
};

export const log: {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

export type WechatErrorKind = 'denied' | 'wechat' | 'invalid' | 'unavailable';
export class WechatError extends Error {
  readonly kind: WechatErrorKind;
  /** WeChat's errcode, when `kind` is `wechat`. */
  readonly code: number | undefined;
}

export type CustomMessage =
  | { tag: 'text'; val: string }
  | { tag: 'image'; val: string }
  | { tag: 'voice'; val: string }
  | {
      tag: 'video';
      val: { mediaId: string; thumbMediaId: string; title: string; description: string };
    }
  | { tag: 'music'; val: Extract<Reply, { tag: 'music' }>['val'] }
  | { tag: 'news'; val: Article }
  | {
      tag: 'mini-program-page';
      val: { title: string; appId: string; pagePath: string; thumbMediaId: string };
    };

export const CustomMessage: {
  text(content: string): CustomMessage;
  image(mediaId: string): CustomMessage;
  voice(mediaId: string): CustomMessage;
  video(
    mediaId: string,
    options?: { thumbMediaId?: string; title?: string; description?: string },
  ): CustomMessage;
  news(article: Article): CustomMessage;
  miniProgramPage(card: {
    title: string;
    appId: string;
    pagePath: string;
    thumbMediaId: string;
  }): CustomMessage;
};

export interface TemplateMessage {
  templateId: string;
  data?: Record<string, string | number | { value: string | number; color?: string }>;
  toUser?: string;
  url?: string;
  miniProgram?: { appId: string; pagePath: string };
  clientMsgId?: string;
}

export const wechat: {
  sendCustom(message: CustomMessage, toUser?: string): void;
  sendText(text: string, toUser?: string): void;
  sendTemplate(message: TemplateMessage): bigint;
  call(
    method: 'get' | 'post',
    path: string,
    options?: { query?: Record<string, string | number>; body?: string | object },
  ): unknown;
};

export type MediaKind = 'image' | 'voice' | 'video' | 'thumb';
export interface MediaFile {
  contentType: string;
  bytes: Uint8Array;
}

export const media: {
  upload(kind: MediaKind, bytes: Uint8Array | ArrayLike<number> | string): string;
  uploadPermanent(
    kind: MediaKind,
    bytes: Uint8Array | ArrayLike<number> | string,
    video?: { title: string; introduction: string },
  ): { mediaId: string; url: string | undefined };
  download(mediaId: string): MediaFile;
  downloadPermanent(mediaId: string): MediaFile;
  imageReply(bytes: Uint8Array | ArrayLike<number>): Reply;
  voiceReply(bytes: Uint8Array | ArrayLike<number>): Reply;
  videoReply(
    bytes: Uint8Array | ArrayLike<number>,
    options?: { title?: string; description?: string },
  ): Reply;
};

export const http: {
  get(url: string, init?: RequestInit): Promise<Response>;
  postJson(url: string, body: unknown, init?: RequestInit): Promise<Response>;
};
