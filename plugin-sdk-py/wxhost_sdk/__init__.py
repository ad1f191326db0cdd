"""wxhost_sdk: write wxhost plugins (WeChat Official Account bots) in Python.

A plugin is a module defining ``handle(msg) -> reply | Outcome | None`` and exporting it with
``WitWorld = export(handle)``; ``python -m wxhost_sdk.build app.py`` builds the component with
componentize-py against the host's WIT world (``wit/plugin.wit``, unchanged, with wasi:http
named in ``wit/python.wit``). The values are the world's own types, as componentize-py
generates them (``wit_world.imports.wxhost_plugin_types``):
``Reply.text("hi")`` is ``Reply_Text(value="hi")``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Union

from . import _bindings  # noqa: F401  (natively: generates the world's bindings first)
from componentize_py_types import Err
from wit_world.imports import config as _config
from wit_world.imports import early_reply as _early
from wit_world.imports import kv as _kv
from wit_world.imports import log as _log
from wit_world.imports import media as _media
from wit_world.imports import raw_fields as _raw_fields
from wit_world.imports import wxhost_plugin_types as types
from wit_world.imports import wechat_api as _wechat

from . import http
from .http import HttpError

__all__ = [
    "CustomMessage",
    "HttpError",
    "MAX_REPLY_BYTES",
    "KvError",
    "Message",
    "Outcome",
    "Reply",
    "ReplyError",
    "WechatError",
    "article",
    "config",
    "encoded_len",
    "export",
    "http",
    "kv",
    "log",
    "reply_early",
    "types",
    "validate_reply",
    "wechat",
]

# ---- messages ----


class Message:
    """A message pushed to the account, with accessors for what plugins read most."""

    def __init__(self, wire: types.Message) -> None:
        self.envelope: types.Envelope = wire.envelope
        self.content: types.Content = wire.content
        self._fields: Optional[list[types.Field]] = list(wire.fields) or None

    @property
    def from_user(self) -> str:
        """The sender's openid."""
        return self.envelope.from_user

    @property
    def to_user(self) -> str:
        """The account's id (``ToUserName``)."""
        return self.envelope.to_user

    @property
    def tenant(self) -> str:
        """The tenant it was pushed to."""
        return self.envelope.tenant

    def text(self) -> Optional[str]:
        """The text of a text message, else ``None``."""
        if isinstance(self.content, types.Content_Text):
            return self.content.value.content
        return None

    def event(self) -> Optional[types.Event]:
        """The event of an event push (``Event_Subscribe(…)``, …), else ``None``."""
        if isinstance(self.content, types.Content_Event):
            return self.content.value
        return None

    def field(self, path: str) -> Optional[str]:
        """A raw XML field by its path (``EventKey``, ``ScanCodeInfo/ScanResult``), fetched
        from the host the first time a field is asked for."""
        if self._fields is None:
            self._fields = list(_raw_fields.get())
        return next((f.value for f in self._fields if f.path == path), None)


# ---- replies and outcomes ----

MAX_TEXT_BYTES = 2048
"""WeChat's limit on a text reply, in UTF-8 bytes."""
MAX_ARTICLES = 8
"""WeChat's limit on the articles of a news reply."""
MAX_REPLY_BYTES = 16 * 1024
"""The largest reply, as ``encoded_len`` measures it: 16 KiB (the Rust SDK's). Any text reply
fits, and a news reply of 8 articles of ordinary length."""
FIELD_LIMITS = {
    "content": MAX_TEXT_BYTES,
    "title": 256,
    "description": 1024,
    "pic_url": 2048,
    "url": 2048,
    "music_url": 2048,
    "hq_music_url": 2048,
    "media_id": 128,
    "thumb_media_id": 128,
    "kf_account": 64,
}
"""The host's caps on reply fields, in UTF-8 bytes (the Rust SDK's)."""

class Reply:
    """Builders of passive replies."""

    @staticmethod
    def text(content: str) -> types.Reply:
        return types.Reply_Text(value=str(content))

    @staticmethod
    def image(media_id: str) -> types.Reply:
        return types.Reply_Image(value=media_id)

    @staticmethod
    def voice(media_id: str) -> types.Reply:
        return types.Reply_Voice(value=media_id)

    @staticmethod
    def video(media_id: str, title: str = "", description: str = "") -> types.Reply:
        return types.Reply_Video(value=types.VideoReply(media_id, title, description))

    @staticmethod
    def music(
        thumb_media_id: str,
        title: str = "",
        description: str = "",
        music_url: str = "",
        hq_music_url: str = "",
    ) -> types.Reply:
        return types.Reply_Music(
            value=types.MusicReply(title, description, music_url, hq_music_url, thumb_media_id)
        )

    @staticmethod
    def news(articles: list[types.Article]) -> types.Reply:
        return types.Reply_News(value=list(articles))

    @staticmethod
    def transfer_customer_service(kf_account: Optional[str] = None) -> types.Reply:
        return types.Reply_TransferCustomerService(value=kf_account)


def article(title: str, url: str, description: str = "", pic_url: str = "") -> types.Article:
    """An article of a news reply."""
    return types.Article(title=title, description=description, pic_url=pic_url, url=url)


class Outcome:
    """What a plugin decided: a reply, handled (no reply, stop the chain), or pass."""

    @staticmethod
    def reply(reply: types.Reply) -> types.Outcome:
        return types.Outcome_Reply(value=reply)

    @staticmethod
    def handled() -> types.Outcome:
        return types.Outcome_Handled()

    @staticmethod
    def pass_() -> types.Outcome:
        return types.Outcome_Pass()


_REPLIES = (
    types.Reply_Text,
    types.Reply_Image,
    types.Reply_Voice,
    types.Reply_Video,
    types.Reply_Music,
    types.Reply_News,
    types.Reply_TransferCustomerService,
)
_OUTCOMES = (types.Outcome_Reply, types.Outcome_Handled, types.Outcome_Pass)


class ReplyError(ValueError):
    """A reply breaks WeChat's rules (the host would refuse it as the plugin's error)."""


def _check(name: str, value: Any, required: bool = False) -> None:
    if not isinstance(value, str):
        raise ReplyError(f"reply field `{name}` must be a string, got {type(value).__name__}")
    if required and not value:
        raise ReplyError(f"reply field `{name}` must not be empty")
    if any(
        (ord(c) < 0x20 and c not in "\t\n\r") or c in "\ufffe\uffff" for c in value
    ):
        raise ReplyError(
            f"reply field `{name}` contains a character XML cannot carry (a control character)"
        )
    size = len(value.encode())
    limit = FIELD_LIMITS.get(name)
    if limit is not None and size > limit:
        raise ReplyError(f"reply field `{name}` of {size} bytes exceeds the {limit}-byte limit")


def validate_reply(reply: types.Reply) -> None:
    """Checks ``reply`` against WeChat's rules and the host's caps; raises ``ReplyError``."""
    if isinstance(reply, types.Reply_Text):
        size = len(str(reply.value).encode())
        if size > MAX_TEXT_BYTES:
            raise ReplyError(f"text reply of {size} bytes exceeds WeChat's 2048-byte limit")
        _check("content", reply.value)
    elif isinstance(reply, (types.Reply_Image, types.Reply_Voice)):
        _check("media_id", reply.value, required=True)
    elif isinstance(reply, types.Reply_Video):
        _check("media_id", reply.value.media_id, required=True)
        _check("title", reply.value.title)
        _check("description", reply.value.description)
    elif isinstance(reply, types.Reply_Music):
        _check("thumb_media_id", reply.value.thumb_media_id, required=True)
        for name in ("title", "description", "music_url", "hq_music_url"):
            _check(name, getattr(reply.value, name))
    elif isinstance(reply, types.Reply_News):
        if not 1 <= len(reply.value) <= MAX_ARTICLES:
            raise ReplyError(f"news reply has {len(reply.value)} articles; WeChat accepts 1 to 8")
        for a in reply.value:
            for name in ("title", "description", "pic_url", "url"):
                _check(name, getattr(a, name))
    elif isinstance(reply, types.Reply_TransferCustomerService):
        if reply.value is not None:
            _check("kf_account", reply.value)
    else:
        raise ReplyError(f"not a reply: {reply!r}")
    size = encoded_len(reply)
    if size > MAX_REPLY_BYTES:
        raise ReplyError(f"reply of {size} bytes exceeds the {MAX_REPLY_BYTES}-byte limit")


def _element(name: str, inner: int) -> int:
    """Bytes of ``<name>`` + ``inner`` bytes + ``</name>``."""
    return 2 * len(name) + 5 + inner


def _leaf(name: str, text: str) -> int:
    """Bytes of ``<name><![CDATA[text]]></name>``; each ``]]>`` splits the CDATA (12 more)."""
    return _element(name, 12 + len(text.encode()) + 12 * text.count("]]>"))


def _group(name: str, leaves: list[tuple[str, str]]) -> int:
    return _element(name, 0) + sum(_leaf(leaf, text) for leaf, text in leaves)


def encoded_len(reply: types.Reply) -> int:
    """The bytes of a valid reply's own XML as the host encodes it: its ``MsgType`` and its
    body, without the ``<xml>`` root and the addressing the host writes. ``MAX_REPLY_BYTES``
    caps it."""
    v = reply.value
    if isinstance(reply, types.Reply_Text):
        kind, body = "text", _leaf("Content", v)
    elif isinstance(reply, types.Reply_Image):
        kind, body = "image", _group("Image", [("MediaId", v)])
    elif isinstance(reply, types.Reply_Voice):
        kind, body = "voice", _group("Voice", [("MediaId", v)])
    elif isinstance(reply, types.Reply_Video):
        leaves = [("MediaId", v.media_id), ("Title", v.title), ("Description", v.description)]
        kind, body = "video", _group("Video", leaves)
    elif isinstance(reply, types.Reply_Music):
        leaves = [
            ("Title", v.title),
            ("Description", v.description),
            ("MusicUrl", v.music_url),
            ("HQMusicUrl", v.hq_music_url),
            ("ThumbMediaId", v.thumb_media_id),
        ]
        kind, body = "music", _group("Music", leaves)
    elif isinstance(reply, types.Reply_News):
        items = (
            _group(
                "item",
                [("Title", a.title), ("Description", a.description), ("PicUrl", a.pic_url), ("Url", a.url)],
            )
            for a in v
        )
        kind = "news"
        body = _element("ArticleCount", len(str(len(v)))) + _element("Articles", 0) + sum(items)
    else:
        kind = "transfer_customer_service"
        body = 0 if v is None else _group("TransInfo", [("KfAccount", v)])
    return _leaf("MsgType", kind) + body


def to_outcome(value: Union[types.Reply, types.Outcome, None]) -> types.Outcome:
    """The outcome a handler's return value stands for: a reply, an ``Outcome``, or ``None``
    (pass). Anything else is an error."""
    if value is None:
        return types.Outcome_Pass()
    if isinstance(value, _REPLIES):
        validate_reply(value)
        return types.Outcome_Reply(value=value)
    if isinstance(value, _OUTCOMES):
        if isinstance(value, types.Outcome_Reply):
            validate_reply(value.value)
        return value
    raise TypeError(f"a plugin returns a Reply, an Outcome or None; it returned {value!r}")


Handler = Callable[[Message], Union[types.Reply, types.Outcome, None]]


def export(handle: Handler) -> type:
    """The component's export for ``handle``: write ``WitWorld = export(handle)`` in the
    plugin's module. What ``handle`` raises is reported as the plugin's error, with its
    message."""

    class WitWorld:
        def handle(self, msg: types.Message) -> types.Outcome:
            try:
                return to_outcome(handle(Message(msg)))
            except Err:
                raise
            except Exception as e:  # every failure is the plugin's error, with its message
                detail = str(e)
                name = type(e).__name__
                raise Err(f"{name}: {detail}" if detail else name) from e

    WitWorld.plugin = staticmethod(handle)  # type: ignore[attr-defined]
    return WitWorld


def reply_early(reply: types.Reply) -> None:
    """Answers the push now with ``reply`` while the plugin goes on; what it returns then is
    delivered late. Once per message."""
    validate_reply(reply)
    try:
        _early.send(reply)
    except Err as e:
        raise RuntimeError(f"early reply refused: {e.value}") from None


# ---- kv ----


class KvError(Exception):
    """A kv call failed. ``kind``: ``key-too-long``, ``value-too-large``, ``quota-exceeded``,
    ``not-a-number``, ``overflow`` or ``unavailable``; ``detail`` the limit or the reason."""

    def __init__(self, kind: str, detail: Any = None) -> None:
        super().__init__(f"kv: {kind}" if detail is None else f"kv: {kind} ({detail})")
        self.kind = kind
        self.detail = detail


_KV_KINDS = {
    _kv.Error_KeyTooLong: "key-too-long",
    _kv.Error_ValueTooLarge: "value-too-large",
    _kv.Error_QuotaExceeded: "quota-exceeded",
    _kv.Error_NotANumber: "not-a-number",
    _kv.Error_Overflow: "overflow",
    _kv.Error_Unavailable: "unavailable",
}


def _kv_call(f: Callable[[], Any]) -> Any:
    try:
        return f()
    except Err as e:
        error = e.value
        raise KvError(_KV_KINDS.get(type(error), "unavailable"), getattr(error, "value", None)) from None


class _Kv:
    """The plugin's own key-value store (per tenant and plugin), kept by the host."""

    def get(self, key: str) -> Optional[bytes]:
        """The value of ``key``, or ``None``."""
        return _kv_call(lambda: _kv.get(key))

    def get_str(self, key: str) -> Optional[str]:
        """The value of ``key`` as UTF-8 text, or ``None``."""
        value = self.get(key)
        return None if value is None else value.decode()

    def get_json(self, key: str) -> Any:
        """The value of ``key`` parsed as JSON, or ``None``."""
        text = self.get_str(key)
        return None if text is None else json.loads(text)

    def set(self, key: str, value: Union[str, bytes], ttl_secs: Optional[int] = None) -> None:
        """Sets ``key`` to ``value``, forgotten after ``ttl_secs`` if given."""
        data = value.encode() if isinstance(value, str) else bytes(value)
        _kv_call(lambda: _kv.set(key, data, ttl_secs))

    def set_json(self, key: str, value: Any, ttl_secs: Optional[int] = None) -> None:
        """Sets ``key`` to ``value`` as JSON."""
        self.set(key, json.dumps(value), ttl_secs)

    def delete(self, key: str) -> bool:
        """Deletes ``key``; whether it was there."""
        return bool(_kv_call(lambda: _kv.delete(key)))

    def increment(self, key: str, delta: int = 1) -> int:
        """Adds ``delta`` to the integer at ``key`` (0 if absent), atomically; the new value."""
        return int(_kv_call(lambda: _kv.increment(key, delta)))


kv = _Kv()

# ---- settings and logging ----


class _Config:
    """The plugin's settings (``settings = { … }`` in the tenant's config)."""

    def get(self, key: str, default: Any = None) -> Any:
        """The setting ``key`` parsed from its JSON, or ``default``."""
        value = _config.get(key)
        return default if value is None else json.loads(value)

    def get_all(self) -> dict[str, Any]:
        """Every setting."""
        return json.loads(_config.get_all())


config = _Config()


class _Log:
    """Lines in the host's log, tagged with the tenant and plugin."""

    def trace(self, message: str) -> None:
        _log.log(_log.Level.TRACE, str(message))

    def debug(self, message: str) -> None:
        _log.log(_log.Level.DEBUG, str(message))

    def info(self, message: str) -> None:
        _log.log(_log.Level.INFO, str(message))

    def warn(self, message: str) -> None:
        _log.log(_log.Level.WARN, str(message))

    def error(self, message: str) -> None:
        _log.log(_log.Level.ERROR, str(message))


log = _Log()

# ---- the WeChat API ----


class WechatError(Exception):
    """A WeChat API call failed. ``kind``: ``denied``, ``wechat`` (WeChat's errcode in
    ``code``), ``invalid`` or ``unavailable``."""

    def __init__(self, kind: str, message: str, code: Optional[int] = None) -> None:
        super().__init__(
            f"wechat error {code}: {message}" if code is not None else f"wechat {kind}: {message}"
        )
        self.kind = kind
        self.code = code


def _api_call(f: Callable[[], Any]) -> Any:
    try:
        return f()
    except Err as e:
        error = e.value
        if isinstance(error, _wechat.Error_Wechat):
            raise WechatError("wechat", error.value.message, error.value.code) from None
        kind = {
            _wechat.Error_Denied: "denied",
            _wechat.Error_Invalid: "invalid",
        }.get(type(error), "unavailable")
        raise WechatError(kind, str(getattr(error, "value", error))) from None


class CustomMessage:
    """Builders of customer-service messages."""

    @staticmethod
    def text(content: str) -> _wechat.CustomMessage:
        return _wechat.CustomMessage_Text(value=str(content))

    @staticmethod
    def image(media_id: str) -> _wechat.CustomMessage:
        return _wechat.CustomMessage_Image(value=media_id)

    @staticmethod
    def voice(media_id: str) -> _wechat.CustomMessage:
        return _wechat.CustomMessage_Voice(value=media_id)

    @staticmethod
    def news(item: types.Article) -> _wechat.CustomMessage:
        return _wechat.CustomMessage_News(value=item)

    @staticmethod
    def video(
        media_id: str, thumb_media_id: str = "", title: str = "", description: str = ""
    ) -> _wechat.CustomMessage:
        return _wechat.CustomMessage_Video(
            value=_wechat.VideoMessage(media_id, thumb_media_id, title, description)
        )

    @staticmethod
    def music(
        thumb_media_id: str,
        title: str = "",
        description: str = "",
        music_url: str = "",
        hq_music_url: str = "",
    ) -> _wechat.CustomMessage:
        return _wechat.CustomMessage_Music(
            value=types.MusicReply(title, description, music_url, hq_music_url, thumb_media_id)
        )

    @staticmethod
    def mini_program_page(
        title: str, app_id: str, page_path: str, thumb_media_id: str
    ) -> _wechat.CustomMessage:
        return _wechat.CustomMessage_MiniProgramPage(
            value=_wechat.MiniProgramCard(title, app_id, page_path, thumb_media_id)
        )


class _Wechat:
    """The account's WeChat API, as far as the tenant grants it (``wechat-api``)."""

    def send_custom(self, message: _wechat.CustomMessage, to_user: Optional[str] = None) -> None:
        """Sends a customer-service message to ``to_user`` (default: the sender)."""
        _api_call(lambda: _wechat.send_custom(to_user, message))

    def send_text(self, text: str, to_user: Optional[str] = None) -> None:
        """Sends a text customer-service message to ``to_user`` (default: the sender)."""
        self.send_custom(CustomMessage.text(text), to_user)

    def send_template(
        self,
        template_id: str,
        data: dict[str, Any],
        to_user: Optional[str] = None,
        url: Optional[str] = None,
        client_msg_id: Optional[str] = None,
    ) -> int:
        """Sends a template message; ``data`` maps names to values or ``(value, color)``.
        Returns WeChat's msgid."""
        fields = [
            _wechat.TemplateField(name, str(v[0]), v[1])
            if isinstance(v, tuple)
            else _wechat.TemplateField(name, str(v), None)
            for name, v in data.items()
        ]
        message = _wechat.TemplateMessage(to_user, template_id, url, None, fields, client_msg_id)
        return int(_api_call(lambda: _wechat.send_template(message)))

    def call(
        self,
        method: str,
        path: str,
        query: Optional[dict[str, Any]] = None,
        body: Any = None,
    ) -> Any:
        """Calls an allow-listed API path with the access token added by the host; ``body``
        is sent as JSON. Returns the parsed answer."""
        verb = _wechat.Method.POST if method.lower() == "post" else _wechat.Method.GET
        pairs = [(k, str(v)) for k, v in (query or {}).items()]
        text = body if body is None or isinstance(body, str) else json.dumps(body)
        return json.loads(_api_call(lambda: _wechat.call(verb, path, pairs, text)))


wechat = _Wechat()


# ---- media material ----

_MEDIA_KINDS = {
    "image": _media.Kind.IMAGE,
    "voice": _media.Kind.VOICE,
    "video": _media.Kind.VIDEO,
    "thumb": _media.Kind.THUMB,
}


def _media_kind(kind: str) -> _media.Kind:
    if kind not in _MEDIA_KINDS:
        raise WechatError("invalid", f"not a media kind: {kind} (image, voice, video or thumb)")
    return _MEDIA_KINDS[kind]


class _Media:
    """The account's media material (``media``): uploads from bytes, downloads, and replies
    built from bytes. The host checks WeChat's formats and sizes first (reading the format from
    the bytes) and uploads the same temporary bytes once, until shortly before WeChat drops them
    (3 days). Kinds: ``image`` (PNG, JPEG, GIF; at most 10 MiB), ``voice`` (AMR, MP3; 2 MiB),
    ``video`` (MP4; 10 MiB), ``thumb`` (JPEG; 64 KiB). Failures raise :class:`WechatError`."""

    def upload(self, kind: str, data: bytes) -> str:
        """Uploads temporary material; returns its media id."""
        wit_kind = _media_kind(kind)
        return _api_call(lambda: _media.upload(wit_kind, bytes(data)))

    def upload_permanent(
        self,
        kind: str,
        data: bytes,
        title: Optional[str] = None,
        introduction: Optional[str] = None,
    ) -> _media.Material:
        """Uploads permanent material (a video needs ``title`` and ``introduction``); returns
        its ``media_id`` and, for an image, its ``url``."""
        wit_kind = _media_kind(kind)
        video = None
        if title is not None or introduction is not None:
            video = _media.VideoInfo(title or "", introduction or "")
        return _api_call(lambda: _media.upload_permanent(wit_kind, bytes(data), video))

    def download(self, media_id: str) -> _media.File:
        """Downloads temporary material: ``content_type`` and ``bytes`` (a video: its URL as
        JSON)."""
        return _api_call(lambda: _media.download(media_id))

    def download_permanent(self, media_id: str) -> _media.File:
        """Downloads permanent material (a video: WeChat's JSON about it)."""
        return _api_call(lambda: _media.download_permanent(media_id))

    def image_reply(self, data: bytes) -> types.Reply:
        """A picture reply showing the image ``data``."""
        return Reply.image(self.upload("image", data))

    def voice_reply(self, data: bytes) -> types.Reply:
        """A voice reply playing ``data`` (AMR or MP3)."""
        return Reply.voice(self.upload("voice", data))

    def video_reply(self, data: bytes, title: str = "", description: str = "") -> types.Reply:
        """A video reply playing the MP4 ``data``."""
        return Reply.video(self.upload("video", data), title, description)


media = _Media()
