"""`echo-py`: answers a text message with `echo: <content>`; passes on everything else."""

from typing import Optional

from wxhost_sdk import Message, Reply, export


def handle(msg: Message) -> Optional[object]:
    text = msg.text()
    return None if text is None else Reply.text(f"echo: {text}")


WitWorld = export(handle)
