"""The one error the CLI prints instead of a traceback."""

from __future__ import annotations


class CLIError(Exception):
    """A problem the user can fix: printed as one line (what is wrong, what to do), exit 2."""

    exit_code = 2
