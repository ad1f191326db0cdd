"""wxhost_sdk.testing: unit-test plugins natively under pytest (no wasm). A ``TestHost`` stands
in for the host: fake kv (the host's key and value caps; TTLs recorded, not expired), settings,
a log recorder, canned WeChat API answers and HTTP responses, and a record of what was sent.

    host = TestHost().setting("max", 10)
    outcome = host.handle(WitWorld, text_message("o_user", "guess"))
    assert outcome == Outcome.reply(Reply.text("…"))
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from componentize_py_types import Err
from wit_world.imports import config as _config
from wit_world.imports import early_reply as _early
from wit_world.imports import kv as _kv
from wit_world.imports import log as _log
from wit_world.imports import raw_fields as _raw_fields
from wit_world.imports import wxhost_plugin_types as types
from wit_world.imports import media as _media
from wit_world.imports import wechat_api as _wechat

from . import http as _http

KEY_BYTES = 256
VALUE_BYTES = 64 * 1024
I64 = (-(2**63), 2**63 - 1)


class PluginError(Exception):
    """A plugin's error, as the host reports it (the message it raised)."""


class TestHost:
    """A fake host. ``handle`` runs a plugin against it as wxhost would."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {}
        self.kv: dict[str, tuple[bytes, Optional[int]]] = {}
        self.logs: list[tuple[str, str]] = []
        self.fields: list[types.Field] = []
        self.early_replies: list[types.Reply] = []
        self.custom_messages: list[tuple[Optional[str], Any]] = []
        self.templates: list[Any] = []
        self.api_calls: list[tuple[str, str, list[tuple[str, str]], Optional[str]]] = []
        self.api_answers: dict[str, str] = {}
        self.http_responses: dict[str, _http.Response] = {}
        self.http_requests: list[_http.Request] = []
        # media id -> (kind, bytes, permanent)
        self.material: dict[str, tuple[str, bytes, bool]] = {}
        self.media_uploads = 0

    def setting(self, key: str, value: Any) -> "TestHost":
        """Sets the plugin setting ``key`` (any JSON value)."""
        self.settings[key] = value
        return self

    def media(self, media_id: str, kind: str, data: bytes) -> "TestHost":
        """Holds material ``media_id`` of ``kind`` (``image``, ``voice``, …) for downloads."""
        self.material[media_id] = (kind, bytes(data), False)
        return self

    def api_answer(self, path: str, answer: Any) -> "TestHost":
        """Answers the raw WeChat API ``path`` with ``answer`` (JSON text or a value)."""
        self.api_answers[path] = answer if isinstance(answer, str) else json.dumps(answer)
        return self

    def http_response(
        self,
        url: str,
        status: int,
        body: str | bytes,
        headers: Optional[list[tuple[str, str]]] = None,
    ) -> "TestHost":
        """Answers requests to exactly ``url`` with ``status`` and ``body``; a request to any
        other URL is denied, as the host denies hosts off the plugin's ``http_hosts``."""
        data = body.encode() if isinstance(body, str) else bytes(body)
        self.http_responses[url] = _http.Response(status, list(headers or []), data)
        return self

    def kv_get(self, key: str) -> Optional[bytes]:
        entry = self.kv.get(key)
        return None if entry is None else entry[0]

    def kv_ttl(self, key: str) -> Optional[int]:
        entry = self.kv.get(key)
        return None if entry is None else entry[1]

    def kv_put(self, key: str, value: str | bytes) -> "TestHost":
        self.kv[key] = (value.encode() if isinstance(value, str) else bytes(value), None)
        return self

    def handle(self, world: type, message: types.Message) -> types.Outcome:
        """Runs the plugin's ``WitWorld`` on ``message`` with this host installed; its outcome,
        or ``PluginError`` with its error. As the host does for the SDK's plugins, the message
        comes without its raw fields, fetched when the plugin reads one."""
        self.fields = list(message.fields)
        bare = types.Message(message.envelope, message.content, [])
        with self.installed():
            try:
                return world().handle(bare)
            except Err as e:
                raise PluginError(str(e.value)) from None

    @contextmanager
    def installed(self) -> Iterator["TestHost"]:
        """The host's imports answer from this host within the block."""
        patches = _fakes(self)
        saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
        for module, name, fake in patches:
            setattr(module, name, fake)
        try:
            yield self
        finally:
            for module, name, original in saved:
                setattr(module, name, original)

    # ---- the fakes ----

    def _check(self, key: str, value: Optional[bytes] = None) -> None:
        if len(key.encode()) > KEY_BYTES:
            raise Err(_kv.Error_KeyTooLong(KEY_BYTES))
        if value is not None and len(value) > VALUE_BYTES:
            raise Err(_kv.Error_ValueTooLarge(VALUE_BYTES))

    def _kv_get(self, key: str) -> Optional[bytes]:
        self._check(key)
        return self.kv_get(key)

    def _kv_set(self, key: str, value: bytes, ttl_secs: Optional[int]) -> None:
        self._check(key, value)
        self.kv[key] = (bytes(value), ttl_secs)

    def _kv_delete(self, key: str) -> bool:
        self._check(key)
        return self.kv.pop(key, None) is not None

    def _kv_increment(self, key: str, delta: int) -> int:
        self._check(key)
        value, ttl = self.kv.get(key, (b"0", None))
        try:
            old = int(value.decode().strip())
        except (UnicodeDecodeError, ValueError):
            raise Err(_kv.Error_NotANumber()) from None
        new = old + delta
        if not I64[0] <= new <= I64[1]:
            raise Err(_kv.Error_Overflow())
        self.kv[key] = (str(new).encode(), ttl)
        return new

    def _early(self, reply: types.Reply) -> None:
        if self.early_replies:
            raise Err("this message was already answered")
        self.early_replies.append(reply)

    def _send_template(self, message: Any) -> int:
        self.templates.append(message)
        return len(self.templates)

    def _http_send(self, request: _http.Request) -> _http.Response:
        self.http_requests.append(request)
        if request.url not in self.http_responses:
            raise _http.HttpError("denied", f"no response for {request.url} in the TestHost")
        return self.http_responses[request.url]

    def _call(self, method: Any, path: str, query: list, body: Optional[str]) -> str:
        self.api_calls.append((method.name.lower(), path, list(query), body))
        if path not in self.api_answers:
            raise Err(_wechat.Error_Denied(f"no answer for {path} in the TestHost"))
        return self.api_answers[path]


    def _store_media(self, kind: Any, data: bytes, permanent: bool) -> str:
        name = kind.name.lower()
        if not data:
            raise Err(_wechat.Error_Invalid(f"the {name} is empty"))
        for media_id, (k, b, p) in self.material.items():
            if not permanent and not p and k == name and b == data:
                return media_id
        self.media_uploads += 1
        media_id = f"media-{self.media_uploads}"
        self.material[media_id] = (name, bytes(data), permanent)
        return media_id

    def _upload_permanent(self, kind: Any, data: bytes, video: Any) -> Any:
        if (kind.name == "VIDEO") != (video is not None):
            raise Err(
                _wechat.Error_Invalid(
                    "a permanent video, and only a video, takes a title and introduction"
                )
            )
        media_id = self._store_media(kind, data, True)
        url = f"https://mmbiz.test/{media_id}" if kind.name == "IMAGE" else None
        return _media.Material(media_id, url)

    def _download(self, media_id: str, url_field: str) -> Any:
        if media_id not in self.material:
            raise Err(_wechat.Error_Wechat(_wechat.WechatError(40007, "invalid media_id")))
        kind, data, _ = self.material[media_id]
        if kind == "video":
            answer = json.dumps({url_field: f"https://mmbiz.test/{media_id}"})
            return _media.File("application/json", answer.encode())
        return _media.File("audio/amr" if kind == "voice" else "image/jpeg", data)


def _fakes(host: TestHost) -> list[tuple[Any, str, Any]]:
    return [
        (_raw_fields, "get", lambda: list(host.fields)),
        (_log, "log", lambda level, message: host.logs.append((level.name.lower(), message))),
        (
            _config,
            "get",
            lambda key: json.dumps(host.settings[key]) if key in host.settings else None,
        ),
        (_config, "get_all", lambda: json.dumps(host.settings)),
        (_kv, "get", host._kv_get),
        (_kv, "set", host._kv_set),
        (_kv, "delete", host._kv_delete),
        (_kv, "increment", host._kv_increment),
        (_early, "send", host._early),
        (_wechat, "send_custom", lambda to_user, m: host.custom_messages.append((to_user, m))),
        (_wechat, "send_template", host._send_template),
        (_wechat, "call", host._call),
        (_media, "upload", lambda kind, data: host._store_media(kind, data, False)),
        (_media, "upload_permanent", host._upload_permanent),
        (_media, "download", lambda media_id: host._download(media_id, "video_url")),
        (_media, "download_permanent", lambda media_id: host._download(media_id, "down_url")),
        (_http, "_transport", host._http_send),
    ]


_next_msg_id = 1000


def message(
    from_user: str,
    content: types.Content,
    fields: Optional[list[types.Field]] = None,
    msg_id: Optional[int] = None,
    create_time: Optional[int] = None,
) -> types.Message:
    """A message from ``from_user`` with ``content``, as the host passes it."""
    global _next_msg_id
    _next_msg_id += 1
    is_event = isinstance(content, types.Content_Event)
    envelope = types.Envelope(
        tenant="test",
        to_user="gh_test",
        from_user=from_user,
        create_time=int(time.time()) if create_time is None else create_time,
        msg_id=None if is_event else (msg_id if msg_id is not None else _next_msg_id),
    )
    return types.Message(envelope, content, list(fields or []))


def text_message(from_user: str, text: str, **options: Any) -> types.Message:
    """A text message from ``from_user``."""
    return message(from_user, types.Content_Text(types.Text(text, None)), **options)


def event_message(from_user: str, event: types.Event, **options: Any) -> types.Message:
    """An event push from ``from_user`` (``types.Event_Click("KEY")``, …)."""
    return message(from_user, types.Content_Event(event), **options)
