// `quote-cache-js`: answers `quote SYMBOL` with the price a price service gives, over outbound
// HTTP, and keeps each quote in kv for `cache_secs` (default 60), so a repeated question within
// that time costs no request. Passes on everything else.
//
// Settings: `service_url` (required; `GET {service_url}/quote?symbol=SYMBOL` answers
// `{"symbol": …, "price": …}`), `cache_secs`. Capabilities: `http`, with the service's host in
// `http_hosts`.
import { Reply, config, definePlugin, http, kv, log } from '@wxhost/plugin-sdk';

/** The symbol of `quote SYMBOL` (any case), if the text is one. */
export function symbol(text) {
  const match = /^\s*quote\s+([A-Za-z0-9]{1,12})\s*$/i.exec(text ?? '');
  return match?.[1].toUpperCase();
}

export const handle = definePlugin(async (msg) => {
  const sym = symbol(msg.text());
  if (sym === undefined) {
    return undefined;
  }
  const cached = kv.getJson(`quote:${sym}`);
  if (cached !== undefined) {
    return Reply.text(`${sym}: ${cached.price} (cached)`);
  }
  const service = config.get('service_url');
  if (typeof service !== 'string') {
    throw new Error('setting `service_url` is missing');
  }
  let answer;
  try {
    answer = await http.get(`${service.replace(/\/+$/, '')}/quote?symbol=${sym}`);
  } catch (e) {
    log.warn(`price service: ${e}`);
    return Reply.text(`${sym}: the price service is unavailable`);
  }
  if (answer.status !== 200) {
    return Reply.text(`${sym}: the price service answered HTTP ${answer.status}`);
  }
  let quote;
  try {
    quote = await answer.json();
  } catch {
    return Reply.text(`${sym}: the price service answered something unreadable`);
  }
  kv.setJson(`quote:${sym}`, { price: quote.price }, { ttlSecs: config.get('cache_secs') ?? 60 });
  return Reply.text(`${sym}: ${quote.price}`);
});
