"""Outbound HTTP (``wasi:http``), allowed only with the ``http`` capability and only to the hosts
the tenant lists in the plugin's ``http_hosts``; the host caps the time and the response size.

    answer = http.get("https://api.example.com/quote?symbol=WX")
    price = answer.json()["price"]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from . import _bindings  # noqa: F401  (natively: generates the world's bindings first)
from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler as _outgoing
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _wasi

__all__ = ["HttpError", "Request", "Response", "get", "post_json", "send"]

_CHUNK = 4096
_READ = 64 * 1024


class HttpError(Exception):
    """A request failed. ``kind``: ``denied`` (the ``http`` capability is not granted, the host
    is not on the plugin's ``http_hosts``, or the call used up its requests), ``invalid-url``
    or ``failed`` (timeout, connection refused, response too large, …)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"HTTP request {kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Request:
    """A request: ``method`` (``GET``, ``POST``, …), an absolute ``http://`` or ``https://``
    ``url``, ``headers`` (the host sets ``host``) and ``body``."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass
class Response:
    """A response: ``status``, ``headers`` and the whole ``body``."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.body)

    def header(self, name: str) -> Optional[str]:
        """The first header called ``name`` (any case)."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def split_url(url: str) -> tuple[bool, str, str]:
    """(https?, authority, path with query) of an absolute URL; ``HttpError`` otherwise."""
    if url.startswith("https://"):
        https, rest = True, url[len("https://") :]
    elif url.startswith("http://"):
        https, rest = False, url[len("http://") :]
    else:
        raise HttpError("invalid-url", f"not an http(s) URL: {url}")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not authority or "@" in authority or " " in authority:
        raise HttpError("invalid-url", f"not an http(s) URL: {url}")
    return https, authority, path if path.startswith("/") else "/" + path


def send(request: Request) -> Response:
    """Sends ``request`` and reads the whole response."""
    split_url(request.url)
    return _transport(request)


def get(url: str, headers: Optional[list[tuple[str, str]]] = None) -> Response:
    """GETs ``url``."""
    return send(Request("GET", url, list(headers or [])))


def post_json(url: str, body: Any, headers: Optional[list[tuple[str, str]]] = None) -> Response:
    """POSTs ``body`` as JSON to ``url``."""
    return send(
        Request(
            "POST",
            url,
            [("content-type", "application/json"), *(headers or [])],
            json.dumps(body).encode(),
        )
    )


_METHODS: dict[str, Any] = {
    "GET": _wasi.Method_Get,
    "HEAD": _wasi.Method_Head,
    "POST": _wasi.Method_Post,
    "PUT": _wasi.Method_Put,
    "DELETE": _wasi.Method_Delete,
    "OPTIONS": _wasi.Method_Options,
    "PATCH": _wasi.Method_Patch,
}


def _failed(what: str) -> HttpError:
    return HttpError("failed", what)


def _code(error: Any) -> HttpError:
    if isinstance(error, _wasi.ErrorCode_HttpRequestDenied):
        return HttpError("denied", "the host refused it")
    return _failed(type(error).__name__.removeprefix("ErrorCode_"))


def _transport(request: Request) -> Response:
    """One request through ``wasi:http/outgoing-handler``: the body is written after ``handle``
    (the host reads it while it sends) and always finished, the response read whole. Each
    child resource is released before its parent, as wasi:http requires."""
    https, authority, path = split_url(request.url)
    try:
        fields = _wasi.Fields.from_list(
            [(k.lower(), v.encode()) for k, v in request.headers]
        )
    except Err as e:
        raise _failed(f"header: {type(e.value).__name__.removeprefix('HeaderError_')}") from None
    outgoing = _wasi.OutgoingRequest(fields)
    method = request.method.upper()
    try:
        outgoing.set_method(_METHODS[method]() if method in _METHODS else _wasi.Method_Other(method))
    except Err:
        raise _failed(f"not an HTTP method: {request.method}") from None
    try:
        outgoing.set_scheme(_wasi.Scheme_Https() if https else _wasi.Scheme_Http())
        outgoing.set_authority(authority)
        outgoing.set_path_with_query(path)
    except Err:
        raise HttpError("invalid-url", f"not an http(s) URL: {request.url}") from None
    body = outgoing.body()
    try:
        pending = _outgoing.handle(outgoing, None)
    except Err as e:
        raise _code(e.value) from None
    with pending:
        with body.write() as stream:
            for i in range(0, len(request.body), _CHUNK):
                try:
                    stream.blocking_write_and_flush(request.body[i : i + _CHUNK])
                except Err as e:
                    raise _failed(f"writing the body: {e.value}") from None
        try:
            _wasi.OutgoingBody.finish(body, None)
        except Err as e:
            raise _code(e.value) from None
        with pending.subscribe() as ready:
            ready.block()
        answer: Union[Ok, Err, None] = pending.get()
    if answer is None:
        raise _failed("no response")
    if isinstance(answer, Err):
        raise _failed("response taken twice")
    inner = answer.value
    if isinstance(inner, Err):
        raise _code(inner.value)
    with inner.value as response:
        status = response.status()
        with response.headers() as fields:
            headers = [(k, v.decode(errors="replace")) for k, v in fields.entries()]
        chunks = []
        with response.consume() as incoming:
            with incoming.stream() as stream:
                while True:
                    try:
                        chunks.append(stream.blocking_read(_READ))
                    except Err as e:
                        if isinstance(e.value, _streams.StreamError_Closed):
                            break
                        raise _failed(
                            f"reading the body: {e.value.value.to_debug_string()}"
                        ) from None
    return Response(status, headers, b"".join(chunks))
