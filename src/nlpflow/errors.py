"""Errors a user can fix, and the one place that turns them into a clean exit."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class UserError(Exception):
    """A problem the user can fix (bad params, bad input data, missing file).

    The message is shown as one line, without a traceback: it says what was wrong,
    where (file, row, key) and what to do.
    """


def exit_on_user_error(func: F) -> F:
    """Wrap a stage's ``main`` so a :class:`UserError` prints one line and exits with 2."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> int | None:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
