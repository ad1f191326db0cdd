import json

import pytest
from wxhost_sdk import Outcome, Reply
from wxhost_sdk.testing import PluginError, TestHost, text_message

from app import WitWorld, symbol

SERVICE = "https://prices.example.com"


def ask(host: TestHost, text: str):
    return host.handle(WitWorld, text_message("o_user", text))


def test_reads_a_quote_over_http_once_then_from_kv() -> None:
    host = (
        TestHost()
        .setting("service_url", f"{SERVICE}/")
        .setting("cache_secs", 30)
        .http_response(f"{SERVICE}/quote?symbol=WX", 200, json.dumps({"symbol": "WX", "price": 175}))
    )
    assert ask(host, "quote wx") == Outcome.reply(Reply.text("WX: 175"))
    assert ask(host, "QUOTE WX") == Outcome.reply(Reply.text("WX: 175 (cached)"))
    assert len(host.http_requests) == 1, "the second answer came from kv"
    assert host.http_requests[0].method == "GET"
    assert host.kv_ttl("quote:WX") == 30


def test_says_what_went_wrong_with_the_price_service_and_caches_nothing_then() -> None:
    host = (
        TestHost()
        .setting("service_url", SERVICE)
        .http_response(f"{SERVICE}/quote?symbol=BAD", 503, "down")
        .http_response(f"{SERVICE}/quote?symbol=ODD", 200, "not json")
    )
    assert ask(host, "quote BAD") == Outcome.reply(Reply.text("BAD: the price service answered HTTP 503"))
    assert ask(host, "quote ODD") == Outcome.reply(
        Reply.text("ODD: the price service answered something unreadable")
    )
    assert ask(host, "quote GONE") == Outcome.reply(Reply.text("GONE: the price service is unavailable"))
    assert len(host.logs) == 1
    assert host.kv == {}


def test_other_texts_pass_and_a_missing_setting_is_the_plugins_error() -> None:
    assert symbol("quote") is None
    assert symbol("quote A B") is None
    assert symbol("quote ABCDEFGHIJKLM") is None
    assert ask(TestHost(), "hello") == Outcome.pass_()
    with pytest.raises(PluginError, match="service_url"):
        ask(TestHost(), "quote WX")
