from wxhost_sdk import Outcome, Reply, types
from wxhost_sdk.testing import TestHost, event_message, text_message

from app import WitWorld


def test_echoes_text() -> None:
    outcome = TestHost().handle(WitWorld, text_message("o_user", "你好 ]]>"))
    assert outcome == Outcome.reply(Reply.text("echo: 你好 ]]>"))


def test_passes_on_events() -> None:
    outcome = TestHost().handle(WitWorld, event_message("o_user", types.Event_Unsubscribe()))
    assert outcome == Outcome.pass_()
