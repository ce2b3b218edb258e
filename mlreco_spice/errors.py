"""Exception types that reach the user. The CLI prints them without a traceback."""
from __future__ import annotations

import logging
import sys
from typing import Callable, NoReturn

__all__ = ["UserError", "ConfigError", "DataError", "BadEventError", "run_script"]


class UserError(Exception):
    """Base of errors caused by input, config or environment, not by a bug.

    Attributes
    ----------
    exit_code : int
        Process exit code the CLI returns for this error.
    """

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A configuration problem. The message names the key path and the fix
    (:mod:`mlreco_spice.config`, :mod:`mlreco_spice.config_validation`)."""


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


def run_script(main: Callable[[], int], logger: str) -> NoReturn:
    """Run a script's ``main()`` (the body of its ``if __name__ == "__main__":``) and exit.

    INFO logging to stderr; a :class:`UserError` becomes one logged line (no
    traceback) and its ``exit_code``, as the CLI does.

    Parameters
    ----------
    main : callable
        Returns the exit code.
    logger : str
        Name of the logger the error line is logged under.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(main())
    except UserError as err:
        logging.getLogger(logger).error("%s", err)
        sys.exit(err.exit_code)
