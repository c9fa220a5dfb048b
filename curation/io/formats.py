"""Format adapters: one raw row (a dict) -> one or more canonical conversations.

Each adapter names the fields it reads; every other field of the row is kept in ``meta``.
A row that cannot be normalized raises RowError naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from curation.errors import RowError

Messages = list[dict]

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}


def _text(row: Mapping, field: str, *, required: bool = True) -> str:
    if field not in row or row[field] is None:
        if required:
            raise RowError(field, "missing field")
        return ""
    value = row[field]
    if not isinstance(value, str):
        raise RowError(field, f"expected a string, got {type(value).__name__}")
    return value


def _join(*parts: str) -> str:
    return "\n\n".join(p.strip("\n") for p in parts if p and p.strip())


def _list(row: Mapping, field: str) -> list:
    if field not in row or row[field] is None:
        raise RowError(field, "missing field")
    value = row[field]
    if not isinstance(value, list | tuple):
        raise RowError(field, f"expected a list, got {type(value).__name__}")
    return list(value)


def _content(value, field: str) -> str:
    """OpenAI content: a string, or a list of parts of which the text parts are joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise RowError(f"{field}[{j}]", "content part without text")
        return "".join(texts)
    if value is None:
        raise RowError(field, "missing content")
    raise RowError(field, f"expected a string, got {type(value).__name__}")


def alpaca(row: Mapping) -> list[Messages]:
    prompt = _join(_text(row, "instruction"), _text(row, "input", required=False))
    return [[{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(row, "output")}]]


def dolly(row: Mapping) -> list[Messages]:
    prompt = _join(_text(row, "instruction"), _text(row, "context", required=False))
    return [[{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(row, "response")}]]


def self_instruct(row: Mapping) -> list[Messages]:
    instruction = _text(row, "instruction")
    instances = _list(row, "instances")
    if not instances:
        raise RowError("instances", "empty list")
    out = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, Mapping):
            raise RowError(f"instances[{i}]", "expected an object")
        prompt = _join(instruction, _text(inst, "input", required=False))
        try:
            output = _text(inst, "output")
        except RowError as e:
            raise RowError(f"instances[{i}].{e.field}", e.reason) from None
        out.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": output}])
    return out


def sharegpt(row: Mapping) -> list[Messages]:
    turns = _list(row, "conversations")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise RowError(f"conversations[{i}]", "expected an object")
        who = turn.get("from", turn.get("role"))
        if not isinstance(who, str):
            raise RowError(f"conversations[{i}].from", "missing or not a string")
        role = SHAREGPT_ROLES.get(who.strip().lower())
        if role is None:
            raise RowError(f"conversations[{i}].from", f"unknown role {who!r}")
        value = turn.get("value", turn.get("content"))
        messages.append({"role": role, "content": _content(value, f"conversations[{i}].value")})
    return [messages]


def openai_messages(row: Mapping) -> list[Messages]:
    turns = _list(row, "messages")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise RowError(f"messages[{i}]", "expected an object")
        role = turn.get("role")
        if not isinstance(role, str):
            raise RowError(f"messages[{i}].role", "missing or not a string")
        role = {"function": "tool", "developer": "system"}.get(role, role)
        messages.append({"role": role, "content": _content(turn.get("content"), f"messages[{i}].content")})
    return [messages]


def _message_list(value, field: str, default_role: str) -> Messages:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, list):
        return openai_messages({"messages": value})[0]
    if value is None:
        raise RowError(field, "missing field")
    raise RowError(field, f"expected a string or a list of messages, got {type(value).__name__}")


def prompt_completion(row: Mapping) -> list[Messages]:
    prompt = _message_list(row.get("prompt"), "prompt", "user")
    completion = _message_list(row.get("completion"), "completion", "assistant")
    return [prompt + completion]


# "\n\nHuman: ..." / "\n\nAssistant: ..." as in Anthropic hh-rlhf: a marker at the start of the text
# or after a blank line. Split as ``(?:^|\n\n)(Human|Assistant|System):[ \t]?`` splits, in two
# steps: a pattern that starts with a literal is searched ~4x faster than one that starts with "^|".
_TRANSCRIPT_SPLIT = re.compile(r"\n\n(Human|Assistant|System):[ \t]?")
_TRANSCRIPT_START = re.compile(r"(Human|Assistant|System):[ \t]?")
_TRANSCRIPT_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}


def split_transcript(text: str) -> list[str]:
    """[text before the first marker, role, content, role, content, ...]."""
    parts = _TRANSCRIPT_SPLIT.split(text)
    start = _TRANSCRIPT_START.match(parts[0])
    if start:
        parts[0:1] = ["", start.group(1), parts[0][start.end() :]]
    return parts


def parse_transcript(text: str, field: str) -> Messages:
    parts = split_transcript(text)
    if len(parts) < 3:
        raise RowError(field, "no 'Human:' / 'Assistant:' turns found")
    if parts[0].strip():
        raise RowError(field, "text before the first 'Human:' / 'Assistant:' marker")
    return [
        {"role": _TRANSCRIPT_ROLES[parts[i]], "content": parts[i + 1].strip()}
        for i in range(1, len(parts), 2)
    ]


def transcript(row: Mapping, field: str | None = None) -> list[Messages]:
    field = field or next((f for f in ("chosen", "text", "transcript") if f in row), "chosen")
    return [parse_transcript(_text(row, field), field)]


@dataclass(frozen=True)
class ColumnMapping:
    """Map arbitrary columns onto a conversation: system (optional) + prompt -> response."""

    prompt: str
    response: str
    system: str | None = None

    def __call__(self, row: Mapping) -> list[Messages]:
        messages = []
        if self.system:
            system = _text(row, self.system, required=False)
            if system.strip():
                messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": _text(row, self.prompt)})
        messages.append({"role": "assistant", "content": _text(row, self.response)})
        return [messages]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for f in (self.prompt, self.response, self.system) if f)


@dataclass(frozen=True)
class Format:
    name: str
    convert: Callable[[Mapping], list[Messages]]
    fields: tuple[str, ...]  # the fields the adapter consumes (everything else goes to meta)
    signature: tuple[frozenset, ...]  # key sets whose presence identifies the format (any one)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("openai", openai_messages, ("messages",), (frozenset({"messages"}),)),
        Format("sharegpt", sharegpt, ("conversations",), (frozenset({"conversations"}),)),
        Format(
            "self_instruct",
            self_instruct,
            ("instruction", "instances"),
            (frozenset({"instruction", "instances"}),),
        ),
        Format("alpaca", alpaca, ("instruction", "input", "output"), (frozenset({"instruction", "output"}),)),
        Format(
            "dolly", dolly, ("instruction", "context", "response"), (frozenset({"instruction", "response"}),)
        ),
        Format(
            "prompt_completion",
            prompt_completion,
            ("prompt", "completion"),
            (frozenset({"prompt", "completion"}),),
        ),
        Format(
            "transcript",
            transcript,
            ("chosen",),
            (frozenset({"chosen"}), frozenset({"transcript"}), frozenset({"text"})),
        ),
    )
}

FORMAT_NAMES = (*FORMATS, "columns")


def detect_format(rows: list[Mapping]) -> str | None:
    """The format whose signature the most sample rows match (first in FORMATS order on ties)."""
    votes: dict[str, int] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        keys = set(row)
        for fmt in FORMATS.values():
            if any(sig <= keys for sig in fmt.signature):
                if fmt.name == "transcript" and not _looks_like_transcript(row):
                    continue
                votes[fmt.name] = votes.get(fmt.name, 0) + 1
                break
    if not votes:
        return None
    return max(votes, key=lambda n: (votes[n], -list(FORMATS).index(n)))


def _looks_like_transcript(row: Mapping) -> bool:
    for f in ("chosen", "transcript", "text"):
        v = row.get(f)
        if isinstance(v, str):
            return "Human:" in v and "Assistant:" in v
    return False
