"""Errors a user can act on. The CLI prints them as one line, never a traceback."""


class CurationError(Exception):
    """Base class for every error the CLI reports without a traceback."""


class ConfigError(CurationError):
    """The configuration is invalid; the message names the bad key."""


class InputError(CurationError):
    """An input file or row is unusable (raised in --strict mode, or for a whole unreadable source)."""


class RowError(Exception):
    """A single row cannot be normalized. Carries the field at fault; becomes a quarantine entry."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(f"{reason} (field: {field})" if field else reason)
        self.field = field
        self.reason = reason


class AccountingError(CurationError):
    """Rows in != kept + rejected + quarantined: the run must fail loudly."""
