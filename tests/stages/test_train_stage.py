"""The train stage end to end on tiny data: outputs, pipeline loading, SIGKILL mid-epoch and
resume, two data-parallel processes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from stages.train import main
from tests.training.tiny import (
    LABELS,
    ONE_THREAD_ENV,
    make_tiny_data,
    one_torch_thread,
    write_params,
)

REPO = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {
    "epochs_run",
    "steps",
    "parameters",
    "lora",
    "evaluations",
    "best_epoch",
    "best_step",
    "monitor",
    "stop_reason",
    "stop_detail",
    "pruned",
    "final",
    "best",
    "health",
    "padding_efficiency",
    "setup",
}
METRICS = {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1_macro"}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_data(tmp_path_factory.mktemp("train-data"), n_train=160)


def setup_run(root: Path, epochs: int, batch: int = 8, accumulation: int = 2, **train: Any) -> Path:
    """params.yaml and the probe's plan under ``root``; returns the params path."""
    (root / "data/probe").mkdir(parents=True, exist_ok=True)
    (root / "data/probe/plan.json").write_text(
        json.dumps(
            {
                "device": "cpu",
                "batch_size": batch,
                "accumulation_steps": accumulation,
                "max_fitting_batch_size": 64,
            }
        )
    )
    return write_params(
        root / "params.yaml",
        {
            "seed": 11,
            "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
            "train": {
                "epochs": epochs,
                "lr": 5e-3,
                "effective_batch_size": batch * accumulation,
                "early_stopping": {"patience": epochs},
                **train,
            },
        },
    )


def argv(root: Path, tiny: tuple[Path, Path]) -> list[str]:
    data, tok = tiny
    return [
        "--params", str(root / "params.yaml"), "--data", str(data), "--tokenizer", str(tok),
        "--probe", str(root / "data/probe/plan.json"), "--models", str(root / "models"),
        "--checkpoints", str(root / "checkpoints"), "--metrics", str(root / "metrics/train.json"),
        "--timing", str(root / "metrics/train_timing.json"),
        "--plots", str(root / "plots/train"), "--logs", str(root / "logs/train"),
    ]  # fmt: skip


def read_tsv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_train_stage_end_to_end(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    setup_run(tmp_path, epochs=3, tensorboard=True)
    assert main(argv(tmp_path, tiny)) == 0

    summary = json.loads((tmp_path / "metrics/train.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    counts = summary["parameters"]  # fine-tuned whole: every parameter trains
    assert counts["trainable"] == counts["total"] > 0 and counts["trainable_share"] == 1.0
    assert summary["lora"] is None
    # Wall times and speed apart: train.json is identical whenever the same params run again.
    timing = json.loads((tmp_path / "metrics/train_timing.json").read_text())
    assert set(timing) == {"seconds", "train_seconds", "examples_per_second", "resumed_from_step"}
    assert timing["seconds"] >= timing["train_seconds"] > 0 and timing["examples_per_second"] > 0
    assert summary["epochs_run"] == 3 and summary["steps"] == 3 * 10  # 160 rows / 16
    assert summary["stop_reason"] == "max_epochs" and summary["pruned"] == 0
    assert timing["resumed_from_step"] is None
    assert set(summary["final"]) == set(summary["best"]) == METRICS
    assert summary["monitor"]["metric"] == "f1_macro" and summary["monitor"]["mode"] == "max"
    assert 1 <= summary["best_epoch"] <= 3
    assert summary["health"]["findings"] == len(summary["health"]["rules"])

    from nlpflow.training.tracking import eval_columns

    epochs = read_tsv(tmp_path / "plots/train/epochs.tsv")
    assert list(epochs[0]) == list(eval_columns()) and set(eval_columns()[2:]) == METRICS
    assert [int(r["epoch"]) for r in epochs] == [1, 2, 3]
    steps = read_tsv(tmp_path / "plots/train/steps.tsv")
    assert list(steps[0]) == ["step", "epoch", "loss", "lr", "grad_norm"]
    assert len(steps) == 30 and float(steps[-1]["lr"]) > 0

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tmp_path / "models/best"), device="cpu")
    (prediction,) = classify("a b c d")
    assert prediction["label"] in LABELS and 0 <= prediction["score"] <= 1
    assert (tmp_path / "models/last/config.json").exists()
    config = json.loads((tmp_path / "models/best/config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"}
    assert not [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp")], "no temp files left"

    out = capsys.readouterr().out
    log = (tmp_path / "logs/train/train.log").read_text()
    assert log.splitlines()[0].startswith("train: sequence task") and log in out
    # TensorBoard is optional: without the package the run says so and goes on.
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert "tensorboard package is not installed" in log
    else:
        assert list((tmp_path / "logs/train/tensorboard").glob("events.out.tfevents.*"))


def test_probe_of_another_effective_batch_is_refused(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params = setup_run(tmp_path, epochs=1)
    params.write_text(
        params.read_text().replace("effective_batch_size: 16", "effective_batch_size: 32")
    )
    with pytest.raises(SystemExit) as exit_info:
        main(argv(tmp_path, tiny))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "effective batch of 8 x 2" in err and "rerun the probe stage" in err
    assert not (tmp_path / "models").exists()


def test_killed_mid_epoch_and_resumed_equals_uninterrupted(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # 10 steps per epoch, a checkpoint every 3 steps: the kill lands mid-epoch, between two
    # checkpoints; the resumed run replays from the last one.
    epochs = 8
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    setup_run(killed, epochs, checkpoint_every_steps=3)
    setup_run(reference, epochs, checkpoint_every_steps=3)

    # A real crash: SIGKILL the stage process soon after a mid-epoch checkpoint appears.
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train", *argv(killed, tiny)],
        cwd=REPO,
        env={**os.environ, **ONE_THREAD_ENV},  # the same thread count as this process
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    first = killed / "checkpoints/step-6"
    deadline = time.monotonic() + 60
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.01)  # a few steps on: the kill falls between checkpoints
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()
    assert not (killed / "metrics/train.json").exists()
    done = sorted(int(p.name.split("-")[1]) for p in (killed / "checkpoints").glob("step-*"))
    assert done and done[-1] < epochs * 10

    assert main(argv(killed, tiny)) == 0
    assert f"resuming from step {done[-1]}," in capsys.readouterr().out
    assert main(argv(reference, tiny)) == 0

    for kind in ("last", "best"):
        a = load_file(str(killed / "models" / kind / "model.safetensors"))
        b = load_file(str(reference / "models" / kind / "model.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), kind
    # The results file of the resumed run is byte-identical to the uninterrupted run's; only
    # the timing file says that it resumed.
    assert (killed / "metrics/train.json").read_bytes() == (
        reference / "metrics/train.json"
    ).read_bytes()
    resumed = json.loads((killed / "metrics/train_timing.json").read_text())
    fresh = json.loads((reference / "metrics/train_timing.json").read_text())
    assert resumed["resumed_from_step"] == done[-1] and fresh["resumed_from_step"] is None
    for name in ("steps.tsv", "epochs.tsv"):
        assert (killed / "plots/train" / name).read_text() == (
            reference / "plots/train" / name
        ).read_text()
    leftovers = [p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not leftovers, "temporary directories of the killed writer are cleaned up"


def test_two_processes_match_one(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    # Data-parallel on the CPU (gloo): the same steps as one process, up to float rounding.
    # Dropout off: with it, each split of a batch draws other masks.
    one, two = tmp_path / "one", tmp_path / "two"
    for root, processes in ((one, 1), (two, 2)):
        params = setup_run(root, epochs=2, processes=processes)
        params.write_text(
            params.read_text().replace("hidden_size: 32", "hidden_size: 32\n  dropout: 0.0")
        )
    assert main(argv(one, tiny)) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "stages.train", *argv(two, tiny)],
        cwd=REPO,
        env={**os.environ, **ONE_THREAD_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "starting 2 processes" in proc.stdout

    a = load_file(str(one / "models/last/model.safetensors"))
    b = load_file(str(two / "models/last/model.safetensors"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)
    s1 = json.loads((one / "metrics/train.json").read_text())
    s2 = json.loads((two / "metrics/train.json").read_text())
    assert s2["setup"]["processes"] == 2 and s1["setup"]["processes"] == 1
    assert s2["steps"] == s1["steps"] == 20
    assert s2["padding_efficiency"] == pytest.approx(s1["padding_efficiency"], rel=0.2)
    steps1 = read_tsv(one / "plots/train/steps.tsv")
    steps2 = read_tsv(two / "plots/train/steps.tsv")
    for r1, r2 in zip(steps1, steps2, strict=True):
        assert float(r2["loss"]) == pytest.approx(float(r1["loss"]), rel=1e-4)
    # Rank 0 alone writes: one log, one set of outputs, no stray files of rank 1.
    assert (two / "logs/train/train.log").read_text().count("train: sequence task") == 1
