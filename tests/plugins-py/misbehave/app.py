"""Misbehaves on command, for the host's limits to stop it: `spin` loops forever (the deadline
must stop it), `bomb` allocates until memory runs out (the memory cap must stop it); any other
text raises (reported as the plugin's error, with its message)."""

from wxhost_sdk import Message, Reply, export


def handle(msg: Message) -> object:
    text = msg.text()
    if text == "spin":
        n = 0
        while True:
            n = (n + 1) & 0xFFFF
    if text == "bomb":
        hoard = []
        while len(hoard) < 100_000:
            hoard.append(bytearray(1024 * 1024))
        return Reply.text(f"never: {len(hoard)}")
    raise ValueError(f"cannot handle {text!r}")


WitWorld = export(handle)
