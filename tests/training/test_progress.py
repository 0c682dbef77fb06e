"""Progress of the training loop: plain lines at a steady interval in logs and CI, the bar
on a terminal."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from nlpflow.training.loop import train
from nlpflow.training.probe import BatchPlan
from nlpflow.training.progress import Progress, TrainClock
from tests.training.tiny import tiny_params

PLAN = BatchPlan(device="cpu", batch_size=8, accumulation_steps=2, max_fitting_batch_size=64)
LINE = re.compile(
    r"^progress: step (\d+)/(\d+) \((\d+)%\)  epoch (\d+\.\d\d)/(\d+)  loss (\d+\.\d{4})  "
    r"lr (\S+)  (\d+\.\d) ex/s$"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_progress_line_every_twentieth_of_the_run(
    tiny_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = io.StringIO()  # not a terminal: as in CI or under dvc repro > log
    monkeypatch.setattr(sys, "stderr", stderr)
    lines: list[str] = []
    # 96 rows / 4 = 24 steps per epoch, 2 epochs = 48 steps: a line every 3 steps (5%).
    result = train(
        tiny_params(epochs=2, effective_batch_size=4), *tiny_data, BatchPlan("cpu", 4, 1, 64),
        tmp_path / "models", tmp_path / "ckpt", log=lines.append,
    )  # fmt: skip
    progress = [line for line in lines if line.startswith("progress:")]
    parsed = [LINE.match(line) for line in progress]
    assert all(parsed), progress
    steps = [int(m.group(1)) for m in parsed if m]
    assert steps == list(range(3, 49, 3))
    for m in parsed:
        assert m is not None
        step = int(m.group(1))
        row = result.steps[step - 1]
        assert m.group(2) == "48" and m.group(5) == "2"
        assert int(m.group(3)) == round(100 * step / 48)
        assert float(m.group(4)) == pytest.approx(row["epoch"], abs=0.0051)
        assert m.group(6) == f"{row['loss']:.4f}" and m.group(7) == f"{row['lr']:.2e}"
        assert float(m.group(8)) > 0
    # In order with the evaluation lines: step 24's line comes right before epoch 1's.
    assert lines[lines.index(progress[7]) + 1].startswith("epoch     1/2  step     24")
    assert stderr.getvalue() == ""  # no bar drawn into a log


def test_a_terminal_gets_the_bar_and_no_lines(
    tiny_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    lines: list[str] = []
    train(tiny_params(epochs=1), *tiny_data, PLAN, tmp_path / "m", tmp_path / "c", log=lines.append)
    assert not [line for line in lines if line.startswith("progress:")]
    assert "epoch 1:" in terminal.getvalue() and "/6 [" in terminal.getvalue()  # tqdm


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_slow_steps_get_a_line_each_minute_with_their_throughput() -> None:
    wall, train_time = FakeTime(), FakeTime()
    clock = TrainClock(now=train_time)
    lines: list[str] = []
    progress = Progress(lines.append, total_steps=1000, epochs=1, clock=clock, bar=False,
                        wall=wall)  # fmt: skip
    assert progress.every_steps == 50
    clock.start()
    for step in range(1, 5):  # 25 s and 16 examples per step: nothing due by steps
        wall.now += 25.0
        train_time.now += 25.0
        clock.examples += 16
        progress.step({"step": step, "epoch": step / 1000, "loss": 0.5, "lr": 1e-3})
    # A line once a minute has passed (after step 3), with 48 examples in 75 s.
    assert lines == ["progress: step 3/1000 (0%)  epoch 0.00/1  loss 0.5000  lr 1.00e-03  0.6 ex/s"]


def test_the_clock_leaves_out_paused_time() -> None:
    now = FakeTime()
    clock = TrainClock(now=now)
    clock.start()
    now.now = 2.0
    with clock.paused():  # validation: not training time
        now.now = 10.0
    now.now = 11.0
    clock.stop()
    clock.examples = 30
    assert clock.seconds == 3.0
    assert clock.timings(12.5) == {
        "seconds": 12.5, "train_seconds": 3.0, "examples_per_second": 10.0,
    }  # fmt: skip
