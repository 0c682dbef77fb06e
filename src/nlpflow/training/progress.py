"""Progress of the training loop: a bar on a terminal, plain lines in logs and CI.

On a terminal (stderr a TTY, not CI) a tqdm bar per epoch shows the loss and examples per
second. Anywhere else (a log file, CI, ``dvc repro`` under a scheduler) a line like::

    progress: step 120/1800 (7%)  epoch 1.33/12  loss 0.4123  lr 1.80e-03  312.4 ex/s

goes to the log every ``PROGRESS_FRACTION`` of the run's steps (20 lines a run), and also
after ``PROGRESS_SECONDS`` without a line when steps are slow. ``ex/s`` is the training
throughput since the previous line: examples (rows) per second of training time, validation
and checkpoints left out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

PROGRESS_FRACTION = 0.05  # a line every 5% of the run's optimizer steps ...
PROGRESS_SECONDS = 60.0  # ... or after a minute without one, whichever comes first


@dataclass
class TrainClock:
    """Training time and examples, validation and checkpoints left out (``paused``)."""

    now: Callable[[], float] = time.perf_counter
    seconds: float = 0.0  # training seconds before the current stretch
    examples: int = 0  # rows trained on
    _since: float | None = None  # start of the current stretch; None while paused

    def start(self) -> None:
        self._since = self.now()

    def stop(self) -> None:
        if self._since is not None:
            self.seconds += self.now() - self._since
            self._since = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    def elapsed(self) -> float:
        """Training seconds so far, the current stretch included."""
        return self.seconds + (0.0 if self._since is None else self.now() - self._since)

    def timings(self, total_seconds: float) -> dict[str, float | None]:
        """metrics/train.json's ``seconds`` (``total_seconds``: the whole run, set-up and
        validation included), ``train_seconds`` and ``examples_per_second`` (training only)."""
        return {
            "seconds": round(total_seconds, 2),
            "train_seconds": round(self.seconds, 2),
            "examples_per_second": (
                round(self.examples / self.seconds, 1) if self.seconds > 0 else None
            ),
        }


@dataclass
class Progress:
    """Reports each optimizer step: a tqdm bar (``bar``) or plain lines through ``log``.

    ``total_steps``: the run's optimizer steps; ``epochs``: ``train.epochs``.
    """

    log: Callable[[str], None]
    total_steps: int
    epochs: int
    clock: TrainClock
    bar: bool  # a terminal: draw a bar and write no lines
    every_steps: int = 0  # 0: PROGRESS_FRACTION of total_steps
    every_seconds: float = PROGRESS_SECONDS
    wall: Callable[[], float] = time.monotonic
    _bar: Any = None
    _last: tuple[float, float, int] = field(default=(0.0, 0.0, 0))  # wall, train s, examples

    def __post_init__(self) -> None:
        if self.every_steps <= 0:
            self.every_steps = max(1, math.ceil(self.total_steps * PROGRESS_FRACTION))
        self._last = (self.wall(), self.clock.elapsed(), self.clock.examples)

    def start_epoch(self, epoch: int, steps: int, done: int) -> None:
        """Epoch ``epoch`` (1-based) of ``steps`` steps, ``done`` of them already taken."""
        if self.bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=steps, initial=done, desc=f"epoch {epoch}", leave=False)

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def step(self, row: dict[str, Any]) -> None:
        """After optimizer step ``row["step"]`` (a ``STEP_COLUMNS`` row)."""
        if self._bar is not None:
            per_second = self.clock.examples / max(self.clock.elapsed(), 1e-9)
            self._bar.set_postfix(
                loss=f"{row['loss']:.4f}", ex_s=f"{per_second:.0f}", refresh=False
            )
            self._bar.update(1)
            return
        if self.bar:
            return
        wall, seconds, examples = self.wall(), self.clock.elapsed(), self.clock.examples
        due = row["step"] % self.every_steps == 0 or row["step"] == self.total_steps
        if not due and wall - self._last[0] < self.every_seconds:
            return
        took = seconds - self._last[1]
        rate = f"{(examples - self._last[2]) / took:.1f}" if took > 0 else "?"
        self.log(
            f"progress: step {row['step']}/{self.total_steps} "
            f"({100 * row['step'] / self.total_steps:.0f}%)  "
            f"epoch {row['epoch']:.2f}/{self.epochs}  loss {row['loss']:.4f}  "
            f"lr {row['lr']:.2e}  {rate} ex/s"
        )
        self._last = (wall, seconds, examples)
