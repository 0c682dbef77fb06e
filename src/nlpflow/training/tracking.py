"""What a run leaves for a person to look at: plot files, console lines, TensorBoard events.

The curves are plain TSV for ``dvc plots`` (``plots/train/steps.tsv``: loss, learning rate
and pre-clip gradient norm per optimizer step; ``plots/train/epochs.tsv``: train and
validation loss and metrics per evaluation), so ``dvc plots diff`` overlays experiments.
TensorBoard event files are optional (``train.tensorboard``) and need the ``tensorboard``
package, which nlpflow does not install.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nlpflow.io import atomic_file

STEP_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm")
TENSORBOARD_MISSING = (
    "train.tensorboard is true but the tensorboard package is not installed "
    "(pip install tensorboard); the curves are in plots/train/*.tsv (dvc plots show)"
)


def eval_columns(extra_metrics: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Columns of ``epochs.tsv``: where, train loss and accuracy, validation metrics."""
    return (
        "epoch",
        "step",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_f1_macro",
        *(f"val_{m}" for m in extra_metrics),
    )


def finite(value: Any) -> Any:
    """NaN and inf become None: JSON has no such numbers, and DVC reads None as missing."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def write_tsv(path: str | Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """A tab-separated plot file for ``dvc plots``, written atomically."""
    with atomic_file(path) as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if finite(row.get(c)) is None else row[c] for c in columns])


class TensorBoard:
    """Optional TensorBoard events in ``directory``; every call is a no-op when disabled."""

    def __init__(self, directory: Path | None, log: Callable[[str], None]) -> None:
        self.writer: Any = None
        if directory is None:
            return
        try:
            import tensorboard  # noqa: F401  # torch's SummaryWriter needs it
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log(TENSORBOARD_MISSING)
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(directory))

    def replay(self, steps: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> None:
        """A resumed run's history, so its event files hold the whole run."""
        for row in steps:
            self.step(row)
        for row in evaluations:
            self.evaluation(row)

    def step(self, row: dict[str, Any]) -> None:
        """``train/loss``, ``train/lr``, ``train/grad_norm`` of one step (a STEP_COLUMNS row)."""
        if self.writer is None:
            return
        for key in ("loss", "lr", "grad_norm"):
            if finite(row.get(key)) is not None:
                self.writer.add_scalar(f"train/{key}", row[key], row["step"])

    def evaluation(self, row: dict[str, Any]) -> None:
        """``train/<metric>`` and ``val/<metric>`` of one evaluation, at its step."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key in ("epoch", "step") or finite(value) is None:
                continue
            split, _, name = key.partition("_")
            self.writer.add_scalar(f"{split}/{name}", value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
