"""`quote-cache-py`: answers `quote SYMBOL` with the price a price service gives, over outbound
HTTP, and keeps each quote in kv for `cache_secs` (default 60), so a repeated question within
that time costs no request. Passes on everything else; as `quote-cache-js` does.

Settings: `service_url` (required; `GET {service_url}/quote?symbol=SYMBOL` answers
`{"symbol": …, "price": …}`), `cache_secs`. Capabilities: `http`, with the service's host in
`http_hosts`.
"""

from __future__ import annotations

import re
from typing import Optional

from wxhost_sdk import HttpError, Message, Reply, config, export, http, kv, log, types

_QUOTE = re.compile(r"\s*quote\s+([A-Za-z0-9]{1,12})\s*", re.IGNORECASE)


def symbol(text: Optional[str]) -> Optional[str]:
    """The symbol of `quote SYMBOL` (any case), if the text is one."""
    match = _QUOTE.fullmatch(text or "")
    return match.group(1).upper() if match else None


def handle(msg: Message) -> Optional[types.Reply]:
    sym = symbol(msg.text())
    if sym is None:
        return None
    cached = kv.get_json(f"quote:{sym}")
    if cached is not None:
        return Reply.text(f"{sym}: {cached['price']} (cached)")
    service = config.get("service_url")
    if not isinstance(service, str):
        raise ValueError("setting `service_url` is missing")
    try:
        answer = http.get(f"{service.rstrip('/')}/quote?symbol={sym}")
    except HttpError as e:
        log.warn(f"price service: {e}")
        return Reply.text(f"{sym}: the price service is unavailable")
    if answer.status != 200:
        return Reply.text(f"{sym}: the price service answered HTTP {answer.status}")
    try:
        price = answer.json()["price"]
    except (ValueError, KeyError, TypeError):
        return Reply.text(f"{sym}: the price service answered something unreadable")
    kv.set_json(f"quote:{sym}", {"price": price}, config.get("cache_secs", 60))
    return Reply.text(f"{sym}: {price}")


WitWorld = export(handle)
