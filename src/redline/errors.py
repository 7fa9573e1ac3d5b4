"""Errors a user can act on, each with the exit code the CLI returns for it.

Exit codes (also in the README):

====  ==========================================================
0     success
1     unexpected internal error (a bug: please report it)
2     invalid input: policy, suite, data file, option or argument
3     target error: unreachable, timed out, refused after retries
4     not found: an unknown run, suite, policy or lexicon id
5     verification failed (evidence, signatures, audit log)
6     a worker of ``guard serve --workers N`` exited (``guard.workers``)
130   interrupted (Ctrl-C); the partial run log stays valid
====  ==========================================================
"""

from __future__ import annotations

from pathlib import Path


class RedlineError(Exception):
    """Base of errors that carry a message for the user and an exit code."""

    exit_code = 1


class InputError(RedlineError):
    """A file or option is invalid. Names the file, line and field path when known."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.message = message
        where = ""
        if self.file:
            where = self.file + (f":{line}" if line is not None else "")
        parts = [p for p in (where, f"field {field!r}" if field else "", message) if p]
        super().__init__(": ".join(parts))


class NotFoundError(RedlineError):
    """A named thing (run, suite, policy, lexicon id) does not exist."""

    exit_code = 4


class VerificationError(RedlineError):
    """A check on evidence or an audit log failed; the message names the check."""

    exit_code = 5
