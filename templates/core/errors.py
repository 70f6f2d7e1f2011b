"""One error type for what a user can fix, and the one-line exit every script of this project uses.

A ``ProjectError`` (a missing checkpoint, a changed config, a dataset in the wrong layout, weights that cannot be
fetched) is printed as ``error: <one line>`` on stderr and ends the script with exit status 2, the convention of
argparse and most command-line tools for bad input; anything else is a bug and keeps its traceback.
"""

import sys
from collections.abc import Callable
from typing import Any


class ProjectError(RuntimeError):
    """Something the user can fix; the message says what."""


def error_line(error: BaseException) -> str:
    """The message of an error; one raised in a DataLoader worker arrives wrapped in that worker's traceback."""
    text = str(error).strip()
    last = text.splitlines()[-1] if text else type(error).__name__
    return last.removeprefix(f"{type(error).__module__}.{type(error).__name__}: ")


def run_main(main: Callable[[], Any]) -> None:
    """Run a script's ``main``: a ``ProjectError`` becomes one line on stderr and exit status 2."""
    try:
        main()
    except ProjectError as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        sys.exit(2)
