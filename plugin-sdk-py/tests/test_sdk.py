from pathlib import Path

import pytest

from wxhost_sdk import (
    CustomMessage,
    MAX_REPLY_BYTES,
    HttpError,
    KvError,
    Message,
    Outcome,
    Reply,
    WechatError,
    article,
    config,
    encoded_len,
    export,
    http,
    kv,
    log,
    media,
    reply_early,
    types,
    validate_reply,
    wechat,
)
from wxhost_sdk.testing import PluginError, TestHost, event_message, text_message


def run(host: TestHost, fn, msg=None):
    return host.handle(export(fn), msg or text_message("o_user", "hi"))


def test_a_message_exposes_its_envelope_text_event_and_raw_fields() -> None:
    seen = {}

    def look(m: Message) -> None:
        seen.update(
            sender=m.from_user,
            to=m.to_user,
            tenant=m.tenant,
            text=m.text(),
            event=m.event(),
            msg_id=m.envelope.msg_id,
            content=m.field("Content"),
            missing=m.field("Nope"),
        )

    msg = text_message("o_user", "hi", msg_id=2**63 + 5, fields=[types.Field("Content", "hi")])
    assert run(TestHost(), look, msg) == Outcome.pass_()
    assert seen == dict(
        sender="o_user", to="gh_test", tenant="test", text="hi", event=None,
        msg_id=2**63 + 5, content="hi", missing=None,
    )
    click = event_message("o_user", types.Event_Click("MENU_1"))
    answer = run(TestHost(), lambda m: Reply.text(f"{m.event().value} {m.text()}"), click)
    assert answer == Outcome.reply(Reply.text("MENU_1 None"))


def test_a_handler_returns_a_reply_an_outcome_or_nothing() -> None:
    host = TestHost()
    assert run(host, lambda m: Reply.text("x")) == Outcome.reply(Reply.text("x"))
    assert run(host, lambda m: Outcome.handled()) == Outcome.handled()
    assert run(host, lambda m: None) == Outcome.pass_()
    with pytest.raises(PluginError, match="returns a Reply, an Outcome or None"):
        run(host, lambda m: "a bare string")


def test_what_a_plugin_raises_is_its_error_with_its_message() -> None:
    def boom(m: Message) -> None:
        raise RuntimeError("boom")

    with pytest.raises(PluginError, match="^RuntimeError: boom$"):
        run(TestHost(), boom)


def test_replies_are_checked_against_wechats_rules() -> None:
    host = TestHost()
    with pytest.raises(PluginError, match="2049 bytes exceeds WeChat's 2048-byte limit"):
        run(host, lambda m: Reply.text("a" * 2049))
    assert run(host, lambda m: Reply.text("字" * 682)) == Outcome.reply(Reply.text("字" * 682))
    with pytest.raises(PluginError, match="`media_id` must not be empty"):
        run(host, lambda m: Reply.image(""))
    with pytest.raises(PluginError, match="character XML cannot carry"):
        run(host, lambda m: Reply.text("bell \x07"))
    with pytest.raises(PluginError, match="9 articles"):
        run(host, lambda m: Reply.news([article(f"t{i}", "https://e.com") for i in range(9)]))
    validate_reply(Reply.music("thumb", title="song"))
    with pytest.raises(ValueError, match="kf_account"):
        validate_reply(Reply.transfer_customer_service("k" * 65))


def test_kv_stores_bytes_text_and_json_with_ttls_and_increments() -> None:
    host = TestHost()

    def use(m: Message) -> None:
        kv.set("bytes", b"\x00\xff")
        kv.set("text", "你好", ttl_secs=30)
        kv.set_json("json", {"a": [1, 2]})
        assert kv.increment("n") == 1
        assert kv.increment("n", 41) == 42
        assert kv.get("bytes") == b"\x00\xff"
        assert kv.get_str("text") == "你好"
        assert kv.get_json("json") == {"a": [1, 2]}
        assert kv.get("absent") is None
        assert kv.delete("json") and not kv.delete("json")

    run(host, use)
    assert host.kv_ttl("text") == 30
    assert host.kv_get("n") == b"42"


def test_kv_failures_are_kv_errors_with_their_kind() -> None:
    host = TestHost().kv_put("word", "abc").kv_put("max", str(2**63 - 1))

    def fail(m: Message) -> None:
        with pytest.raises(KvError) as e:
            kv.set("k" * 257, "v")
        assert (e.value.kind, e.value.detail) == ("key-too-long", 256)
        with pytest.raises(KvError, match="value-too-large"):
            kv.set("k", "v" * (64 * 1024 + 1))
        with pytest.raises(KvError, match="not-a-number"):
            kv.increment("word")
        with pytest.raises(KvError, match="overflow"):
            kv.increment("max")

    run(host, fail)
    with pytest.raises(PluginError, match="^KvError: kv: not-a-number$"):
        run(host, lambda m: kv.increment("word"))


def test_settings_and_logs() -> None:
    host = TestHost().setting("max", 10).setting("names", ["a"])

    def use(m: Message) -> None:
        assert config.get("max") == 10
        assert config.get("absent", 7) == 7
        assert config.get_all() == {"max": 10, "names": ["a"]}
        log.info("hello")
        log.warn(42)

    run(host, use)
    assert host.logs == [("info", "hello"), ("warn", "42")]


def test_the_wechat_api() -> None:
    host = TestHost().api_answer("cgi-bin/menu/get", {"menu": {"button": []}})

    def use(m: Message) -> None:
        wechat.send_text("late")
        wechat.send_custom(CustomMessage.image("m1"), "o_other")
        assert wechat.send_template("T1", {"thing1": "x", "amount": (5, "#f00")}) == 1
        assert wechat.call("get", "cgi-bin/menu/get", {"a": 1}) == {"menu": {"button": []}}
        with pytest.raises(WechatError) as e:
            wechat.call("post", "cgi-bin/other", body={"x": 1})
        assert e.value.kind == "denied"

    run(host, use)
    assert host.custom_messages == [(None, CustomMessage.text("late")), ("o_other", CustomMessage.image("m1"))]
    card = CustomMessage.mini_program_page("t", "wxapp", "pages/index", "thumb")
    assert (card.value.app_id, card.value.page_path) == ("wxapp", "pages/index")
    assert CustomMessage.video("m", title="v").value.title == "v"
    assert CustomMessage.music("thumb", music_url="https://m").value.thumb_media_id == "thumb"
    assert [(f.name, f.value, f.color) for f in host.templates[0].data] == [("thing1", "x", None), ("amount", "5", "#f00")]
    assert host.api_calls[0] == ("get", "cgi-bin/menu/get", [("a", "1")], None)
    assert host.api_calls[1][3] == '{"x": 1}'


def test_media_replies_upload_identical_bytes_once_and_downloads_return_them() -> None:
    png = b"\x89PNG fake"
    host = TestHost().media("m_video", "video", b"mp4")

    def use(m: Message) -> None:
        assert media.image_reply(png) == Reply.image("media-1")
        assert media.image_reply(png) == Reply.image("media-1")
        assert media.voice_reply(png) == Reply.voice("media-2")
        file = media.download("media-1")
        assert (file.content_type, file.bytes) == ("image/jpeg", png)
        assert media.download("m_video").bytes == b'{"video_url": "https://mmbiz.test/m_video"}'
        material = media.upload_permanent("video", png, title="t", introduction="i")
        assert material.media_id == "media-3"
        with pytest.raises(WechatError) as e:
            media.download("nope")
        assert (e.value.kind, e.value.code) == ("wechat", 40007)
        with pytest.raises(WechatError) as e:
            media.upload("gif", png)
        assert e.value.kind == "invalid"

    run(host, use)
    assert host.media_uploads == 3


def test_an_early_reply_is_sent_once_per_message() -> None:
    host = TestHost()

    def early(m: Message) -> object:
        reply_early(Reply.text("working on it"))
        with pytest.raises(RuntimeError, match="already answered"):
            reply_early(Reply.text("again"))
        return Reply.text("done")

    assert run(host, early) == Outcome.reply(Reply.text("done"))
    assert host.early_replies == [Reply.text("working on it")]


def test_the_sdk_builds_against_the_hosts_own_wit_world() -> None:
    sdk = Path(__file__).parent.parent / "wit" / "plugin.wit"
    host = Path(__file__).parent.parent.parent / "wit" / "plugin.wit"
    assert sdk.read_text() == host.read_text(), "plugin-sdk-py/wit/plugin.wit must copy wit/plugin.wit"


def test_http_requests_go_to_the_host_and_answers_are_read_whole() -> None:
    host = TestHost().http_response(
        "https://api.example.com/q?x=1", 201, b'{"ok": true}', [("Content-Type", "application/json")]
    )

    def fn(msg):
        answer = http.post_json("https://api.example.com/q?x=1", {"n": 1}, [("x-trace", "7")])
        return Reply.text(f"{answer.status} {answer.json()['ok']} {answer.header('content-type')}")

    assert run(host, fn) == Outcome.reply(Reply.text("201 True application/json"))
    (sent,) = host.http_requests
    assert (sent.method, sent.body) == ("POST", b'{"n": 1}')
    assert sent.headers == [("content-type", "application/json"), ("x-trace", "7")]


def test_http_refuses_what_is_not_an_http_url_and_reports_denials() -> None:
    for url in ["ftp://a.com", "https:///x", "http://user@a.com/", "a.com/x"]:
        with pytest.raises(HttpError) as e:
            http.get(url)
        assert e.value.kind == "invalid-url", url
    assert http.split_url("http://a.com?q") == (False, "a.com", "/?q")
    assert http.split_url("https://127.0.0.1:9000") == (True, "127.0.0.1:9000", "/")

    def fn(msg):
        try:
            http.get("https://elsewhere.example.com/")
        except HttpError as e:
            return Reply.text(e.kind)

    host = TestHost()
    assert run(host, fn) == Outcome.reply(Reply.text("denied"))
    assert [r.url for r in host.http_requests] == ["https://elsewhere.example.com/"]


def test_a_whole_reply_is_capped_at_16_kib_of_xml_measured_as_the_host_encodes_it() -> None:
    # <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>, as the Rust SDK counts.
    assert encoded_len(Reply.text("hi")) == 68
    assert encoded_len(Reply.text("a]]>b")) - encoded_len(Reply.text("a>>>b")) == 12

    def long(i: int, url: str) -> types.Article:
        return article(f"title {i}".ljust(256, "t"), url, description="d" * 1024)

    fits = [long(i, "https://example.com/") for i in range(8)]
    assert encoded_len(Reply.news(fits)) <= MAX_REPLY_BYTES
    validate_reply(Reply.news(fits))
    big = Reply.news([long(i, "https://example.com/" + "u" * 2000) for i in range(8)])
    with pytest.raises(PluginError, match=f"reply of {encoded_len(big)} bytes exceeds the 16384-byte limit"):
        run(TestHost(), lambda msg: big)
