"""Quiet logs in CI and files; progress bars only on a terminal."""

from __future__ import annotations

import os
import sys


def on_terminal() -> bool:
    """Progress bars only when a person is watching (stderr is a TTY and not CI)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def quiet_libraries(transformers: bool = True) -> None:
    """Silence library chatter and progress bars unless attached to a terminal.
    ``transformers=False``: leave transformers alone (and unimported: about a second)."""
    import datasets

    # Transforms go to a temporary directory: a cache file written next to a DVC output
    # would change that output behind DVC's back.
    datasets.disable_caching()
    if not on_terminal():
        datasets.disable_progress_bars()
    if transformers:
        import transformers as hf

        hf.logging.set_verbosity_error()
        if not on_terminal():
            hf.logging.disable_progress_bar()
