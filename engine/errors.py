"""The engine's own exception types.

Errors a user can cause (bad config, bad data, unknown names) are `UserError`s:
the CLI prints their message as one line on stderr and exits with code 2.
"""


class PrunelabError(Exception):
    """Base of every error prunelab raises on purpose."""

    exit_code = 1


class UserError(PrunelabError):
    """Bad input: the message names the field or file, and the fix."""

    exit_code = 2


class ConfigError(UserError):
    """A config field is missing, of the wrong type, or out of range."""


class DataError(UserError):
    """A data set is missing, truncated, or malformed."""


class UnknownNameError(ConfigError):
    """A registry was asked for a name it does not hold (a config's or an argument's): a ConfigError."""

    def __init__(self, kind: str, name: str, known):
        known = sorted(known)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(known)}")
        self.kind, self.name, self.known = kind, name, known


class TrainingDiverged(PrunelabError):
    """The training loss became NaN or infinite."""
