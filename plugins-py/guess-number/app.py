"""`guess-number-py`: a per-user number-guessing game whose state lives in kv, as the Rust
`guess-number` plays it.

`guess` (or `猜数字`) starts a game with a number from 1 to `max` (setting, default 100); each
number then gets "higher"/"lower" until it is found. A game left alone expires after
`ttl_secs` (default 600). Other texts pass to the next plugin.
"""

from __future__ import annotations

from typing import Optional

from wxhost_sdk import Message, Reply, config, export, kv, types


def key(msg: Message) -> str:
    return f"game:{msg.from_user}"


def pick(msg: Message, maximum: int) -> int:
    """A number in 1..=maximum derived from the message (the Rust plugin's FNV-1a)."""
    msg_id = "None" if msg.envelope.msg_id is None else f"Some({msg.envelope.msg_id})"
    h = 0xCBF29CE484222325
    for b in f"{msg.from_user}|{msg.envelope.create_time}|{msg_id}".encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % max(maximum, 1) + 1


def handle(msg: Message) -> Optional[types.Reply]:
    text = msg.text()
    if text is None:
        return None
    text = text.strip()
    maximum = config.get("max", 100)
    ttl = config.get("ttl_secs", 600)
    if text.lower() == "guess" or text == "猜数字":
        kv.set_json(key(msg), {"target": pick(msg, maximum), "tries": 0}, ttl)
        return Reply.text(f"I picked a number from 1 to {maximum}. Your guess?")
    if not text.lstrip("+").isdigit() or not text.isascii():
        return None
    guess = int(text)
    game = kv.get_json(key(msg))
    if game is None:
        return None  # a number, but no game: not ours
    game["tries"] += 1
    if guess == game["target"]:
        kv.delete(key(msg))
        return Reply.text(f"{guess} is right! Found in {game['tries']} tries.")
    kv.set_json(key(msg), game, ttl)
    return Reply.text(f"{guess} is too low." if guess < game["target"] else f"{guess} is too high.")


WitWorld = export(handle)
