// Types of @wxhost/plugin-sdk/testing.
import type { Content, CustomMessage, Event, Field, Handle, Outcome, Reply, WireMessage } from './index.js';

/** A plugin's error, as the host reports it. */
export class PluginError extends Error {}

export class TestHost {
  settings: Record<string, unknown>;
  kv: Map<string, { value: Uint8Array; ttlSecs: number | undefined }>;
  /** `[level, message]` of every log line. */
  logs: Array<[string, string]>;
  earlyReplies: Reply[];
  customMessages: Array<{ toUser: string | undefined; message: CustomMessage }>;
  templates: unknown[];
  apiCalls: Array<{ method: string; path: string; query: Array<[string, string]>; body: string | undefined }>;
  httpRequests: Array<{ method: string; url: string; body: unknown }>;
  /** Material by media id (uploaded, or given with `media`). */
  material: Map<string, { kind: string; bytes: Uint8Array; permanent: boolean }>;
  /** Uploads that reached the fake WeChat (identical temporary bytes reuse their media id). */
  mediaUploads: number;

  setting(key: string, value: unknown): this;
  httpResponse(url: string, status: number, body: string | object, headers?: Record<string, string>): this;
  apiAnswer(path: string, json: string | object): this;
  media(mediaId: string, kind: string, bytes: Uint8Array | ArrayLike<number>): this;
  kvGet(key: string): Uint8Array | undefined;
  kvGetString(key: string): string | undefined;
  kvTtl(key: string): number | undefined;
  kvPut(key: string, value: string | Uint8Array): this;
  /** Runs `handle` on `message` with this host installed. */
  handle(handle: Handle, message: WireMessage): Promise<Outcome>;
}

export interface MessageOptions {
  fields?: Field[];
  msgId?: number | bigint;
  createTime?: number;
}

export function message(fromUser: string, content: Content, options?: MessageOptions): WireMessage;
export function textMessage(fromUser: string, text: string, options?: MessageOptions): WireMessage;
export function eventMessage(fromUser: string, event: Event, options?: MessageOptions): WireMessage;
