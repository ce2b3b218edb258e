"""Exception types that reach the user. The CLI prints them without a traceback."""
from __future__ import annotations

__all__ = ["UserError", "DataError", "BadEventError"]


class UserError(Exception):
    """Base of errors caused by input, config or environment, not by a bug.

    Attributes
    ----------
    exit_code : int
        Process exit code the CLI returns for this error.
    """

    exit_code = 2


class DataError(UserError):
    """A file cannot be used (missing, corrupt, lacks a product).

    The message names the file, and the entry when one is involved.
    """

    exit_code = 1


class BadEventError(DataError):
    """One event is unusable; with ``io.on_bad_event: skip`` it is skipped and recorded.

    Parameters
    ----------
    file, entry : str, int
        Where the event is.
    reason : str
        What is wrong, in words.
    """

    def __init__(self, file: str, entry: int, reason: str):
        self.file, self.entry, self.reason = str(file), int(entry), reason
        super().__init__(f"{file} entry {entry}: {reason}")
