"""Configs as plain data for worker processes, which then never import pydantic.

A stage holds its pydantic config; a worker only reads its fields. Pickled for a worker, each
config model becomes a ``PlainConfig`` (its fields, nested models likewise), so unpickling the
stages needs neither pydantic nor ``curation.config`` (~0.2 s of every worker's start-up).
"""

from __future__ import annotations


class PlainConfig:
    """A read-only copy of a config model's fields, with the same attribute access."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict):
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, name: str):
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __reduce__(self):
        return PlainConfig, (self._fields,)

    def __eq__(self, other) -> bool:
        return isinstance(other, PlainConfig) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"PlainConfig({self._fields!r})"


def plain(value):
    """``value`` with every config model in it (a pydantic model: it has ``model_fields``) replaced
    by a ``PlainConfig``; other values as they are."""
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, dict):
        return PlainConfig({name: plain(getattr(value, name)) for name in fields})
    if type(value) is dict:
        return {k: plain(v) for k, v in value.items()}
    if type(value) in (list, tuple):  # not their subclasses (a named tuple keeps its fields)
        return type(value)(plain(v) for v in value)
    return value


def config_or_default(cfg, name: str):
    """``cfg``, or a default instance of the config model ``name`` of curation.config (imported
    only then, so that modules which only run stages never import it)."""
    if cfg is not None:
        return cfg
    import curation.config

    return getattr(curation.config, name)()
