"""docs/config.md from the config models: every key, its type, its default and what it means.

    python -m pipelines.config_docs            # rewrite docs/config.md
    python -m pipelines.config_docs --check    # exit 1 when docs/config.md is out of date

The meaning of a key is its model's own comment in the source (the comment lines above the field
and the one after it), so the reference cannot drift from the code: tests/test_docs.py runs
``--check`` in CI.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"
FIELD_LINE = re.compile(r"^    (\w+): [^=]+?(?:=.*?)?(?:  # (?P<comment>.*))?$")


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's comment: the comment lines right above it and the one at its end."""
    out, above = {}, []
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if line.startswith("    #"):
            above.append(stripped.lstrip("# "))
            continue
        m = FIELD_LINE.match(line)
        if m and m.group(1) in model.model_fields:
            parts = above + ([m.group("comment")] if m.group("comment") else [])
            out[m.group(1)] = " ".join(parts)
        above = [] if not line.startswith("        ") else above
    return out


def _type(annotation) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"\b(typing|pydantic|curation\.config|training\.config)\.", "", text)
    text = text.replace("NoneType", "None").replace("Literal", "one of ")
    return text


def _default(field) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{value!r}`"


def _nested(annotation) -> type[BaseModel] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        for inner in typing.get_args(arg):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _rows(
    model: type[BaseModel], prefix: str, out: list[str], sections: list[tuple[str, type[BaseModel]]]
) -> None:
    notes = _comments(model)
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = f"{prefix}{name}"
        nested = _nested(field.annotation)
        if nested is not None:
            is_list = typing.get_origin(field.annotation) is list
            sections.append((f"{key}[]" if is_list else key, nested))
            continue
        aliases = getattr(field.validation_alias, "choices", None) or []
        also = [a for a in aliases if a != name]
        note = notes.get(name, "")
        if also:
            note = (note + " " if note else "") + f"(also read as {', '.join(f'`{a}`' for a in also)})"
        cells = (f"`{key}`", _type(field.annotation), _default(field), note)
        out.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")


def _section(title: str, model: type[BaseModel], intro: str) -> list[str]:
    lines = [f"## {title}", "", intro, ""]
    queue = [("", model)]
    while queue:
        prefix, m = queue.pop(0)
        doc = (
            (m.__doc__ or "").strip().splitlines()[0] if m.__doc__ and m.__module__ != "pydantic.main" else ""
        )
        if prefix:
            lines += [f"### `{prefix}`", ""] + ([doc, ""] if doc and not doc.startswith("!!!") else [])
        rows: list[str] = []
        sections: list[tuple[str, type[BaseModel]]] = []
        _rows(m, (prefix.removesuffix("[]") + "." if prefix else ""), rows, sections)
        if rows:
            lines += ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
        queue = sections + queue
    return lines


def render() -> str:
    from curation.config import CurateConfig
    from training.config import TrainConfig

    lines = [
        "# Configuration reference",
        "",
        "Generated from the config models by `python -m pipelines.config_docs` (CI checks that it is",
        "current). Every key has a default that works; an unknown or invalid key is an error naming it.",
        "",
    ]
    lines += _section(
        "Curation (`python -m pipelines.curate --config FILE`)",
        CurateConfig,
        "The YAML file's top-level keys; relative paths resolve against the config file's folder.",
    )
    lines += _section(
        "Training (`python -m pipelines.train --config FILE`)",
        TrainConfig,
        "Names as in `trl.SFTConfig` and `peft.LoraConfig`; any other field of those two classes is "
        "passed through unchanged (checked against the installed trl and peft).",
    )
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/config.md is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python -m pipelines.config_docs", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
