"""The canonical record (docs/architecture.md): id, source, messages, meta; plus role rules and stable ids."""

from __future__ import annotations

import hashlib
import unicodedata

import pyarrow as pa

from curation.errors import RowError

ROLES = ("system", "user", "assistant", "tool")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)

RECORD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("messages", MESSAGES_TYPE),
        ("meta", pa.string()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("file", pa.string()),
        ("row", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


def _normalize_text(text: str) -> str:
    return (text if text.isascii() else unicodedata.normalize("NFC", text)).strip()


def conversation_id(messages: list[dict]) -> str:
    """Stable id: the same normalized conversation gives the same id in every run and on every machine."""
    key = "".join([f"{m['role']}\x1f{_normalize_text(m['content'])}\x1e" for m in messages])
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def records_table(conversations: list[list[dict]], source: str = "s") -> pa.Table:
    """A record table from already normalized conversations (for scoring texts with the stages)."""
    return pa.table(
        {
            "id": [conversation_id(c) for c in conversations],
            "source": [source] * len(conversations),
            "messages": pa.array(conversations, RECORD_SCHEMA.field("messages").type),
            "meta": ["{}"] * len(conversations),
        },
        schema=RECORD_SCHEMA,
    )


def check_messages(messages: list[dict], field: str = "messages") -> list[dict]:
    """Validate a normalized conversation; raise RowError naming the problem.

    Rules: known roles; string contents; system only first; the first non-system turn is the user's;
    user and assistant never speak twice in a row (tool turns follow an assistant or another tool
    turn); at least one assistant turn.
    """
    if not messages:
        raise RowError(field, "empty conversation")
    prev = None
    answered = False
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        problem = _turn_problem(i, role, content, prev)
        if problem is not None:  # the message is only built for a bad row
            part, reason = problem
            raise RowError(f"{field}[{i}].{part}", reason)
        prev = role
        answered = answered or role == "assistant"
    if not answered:
        raise RowError(field, "no assistant turn")
    return messages


def _turn_problem(i: int, role, content, prev: str | None) -> tuple[str, str] | None:
    """(field part, reason) of what is wrong with turn ``i``, or None."""
    if role not in ROLES:
        return "role", f"unknown role {role!r}"
    if not isinstance(content, str):
        return "content", f"content is {type(content).__name__}, expected a string"
    if not content.isascii() and _has_surrogates(content):
        return "content", "invalid UTF-8 in text"
    if role == "system" and i != 0:
        return "role", "system turn after the start of the conversation"
    if role == "assistant" and prev not in ("user", "tool"):
        return "role", f"assistant turn after {prev or 'nothing'}"
    if role == "user" and prev == "user":
        return "role", "two user turns in a row"
    if role == "tool" and prev not in ("assistant", "tool"):
        return "role", f"tool turn after {prev or 'nothing'}"
    return None


def _has_surrogates(text: str) -> bool:
    # Lone surrogates appear when bytes that are not UTF-8 were decoded with surrogateescape.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
