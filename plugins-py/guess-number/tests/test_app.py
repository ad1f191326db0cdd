from wxhost_sdk import Outcome, types
from wxhost_sdk.testing import TestHost, text_message

from app import WitWorld


def say(host: TestHost, text: str) -> str:
    outcome = host.handle(WitWorld, text_message("o_player", text))
    assert isinstance(outcome, types.Outcome_Reply), f"{text}: {outcome}"
    assert isinstance(outcome.value, types.Reply_Text)
    return outcome.value.value


def test_a_game_is_played_to_the_end_by_bisection() -> None:
    host = TestHost().setting("max", 1000)
    assert "1 to 1000" in say(host, "guess")
    assert host.kv_ttl("game:o_player") == 600
    lo, hi = 1, 1000
    for _ in range(10):
        mid = (lo + hi) // 2
        answer = say(host, str(mid))
        if "right" in answer:
            assert host.kv_get("game:o_player") is None, "finished games are deleted"
            return
        if "low" in answer:
            lo = mid + 1
        else:
            hi = mid - 1
    assert "right" in say(host, str(lo))


def test_numbers_without_a_game_and_other_text_pass() -> None:
    host = TestHost()
    assert host.handle(WitWorld, text_message("o_player", "42")) == Outcome.pass_()
    assert host.handle(WitWorld, text_message("o", "hello")) == Outcome.pass_()
