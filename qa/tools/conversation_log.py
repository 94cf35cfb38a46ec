"""Conversations kept on disk under an id, so that the chat finds one again after a page reload
(the id is in the page's URL). What is kept is what was asked, in order, with the "new topic"
marks: the answers are asked again on reload, from the current index."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

_CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def conversation_file(folder: Path, conversation_id: str) -> Path:
    """The file of a conversation; ValueError for an id that is not one (it comes from a URL)."""
    if not _CONVERSATION_ID.fullmatch(conversation_id):
        raise ValueError(f"{conversation_id!r} is not a conversation id (32 hexadecimal digits)")
    return folder / f"{conversation_id}.json"


def save_conversation(folder: Path, conversation_id: str, entries: list[dict]) -> None:
    """Write a conversation's entries ({"question": …} or {"new_topic": true}), replacing the old
    file in one rename, so that a reload never reads half of it."""
    path = conversation_file(folder, conversation_id)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"entries": entries}, ensure_ascii=False), "utf-8")
    partial.replace(path)


def load_conversation(folder: Path, conversation_id: str) -> list[dict]:
    """A conversation's entries; none when it was never saved; ValueError when its file is not one."""
    path = conversation_file(folder, conversation_id)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text("utf-8"))["entries"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a saved conversation ({error})") from error
    if not all(isinstance(e, dict) and (isinstance(e.get("question"), str) or e.get("new_topic") is True) for e in entries):
        raise ValueError(f"{path} is not a saved conversation (an entry is neither a question nor a new topic)")
    return entries
