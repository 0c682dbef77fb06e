"""The learning-rate range test on a tiny model: the curve, the early stop, the suggestion."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from nlpflow.contracts import LrRangeInputs
from nlpflow.errors import UserError
from nlpflow.params import parse_params
from nlpflow.training.lr_range import (
    Smoother,
    centred_range,
    lr_at,
    read_suggestion,
    run_range_test,
    suggest,
)
from nlpflow.training.probe import BatchPlan

PLAN = BatchPlan(device="cpu", batch_size=8, accumulation_steps=2, max_fitting_batch_size=64)


@pytest.fixture(scope="module")
def easy_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_easy_data(tmp_path_factory.mktemp("easy"))


def make_easy_data(root: Path) -> tuple[Path, Path]:
    """Pairs labelled by whether the letter 'a' occurs: a 1-layer model learns it in a few
    dozen steps, so its range-test curve has a real descent (the tiny anagram task has none
    that early)."""
    import random

    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    from nlpflow.data.saved import DataMeta, write_saved
    from nlpflow.modeling.tokenizers import train_tokenizer

    rng = random.Random(0)
    rows = []
    for _ in range(160):
        first = [rng.choice("abcdefgh") for _ in range(rng.randint(3, 5))]
        second = [rng.choice("bcdefgh") for _ in range(rng.randint(3, 5))]
        rows.append((" ".join(first), " ".join(second), int("a" in first)))
    tokenizer = train_tokenizer([r[0] for r in rows] + [r[1] for r in rows], kind="char")
    features = Features({"input_ids": Sequence(Value("int32")),
                         "token_type_ids": Sequence(Value("int8")),
                         "labels": ClassLabel(names=["no", "yes"]), "length": Value("int32")})  # fmt: skip
    enc = tokenizer([r[0] for r in rows], [r[1] for r in rows])
    split = Dataset.from_dict(
        {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
         "labels": [r[2] for r in rows], "length": [len(i) for i in enc["input_ids"]]},
        features=features,
    )  # fmt: skip
    datasets.disable_progress_bars()
    meta = DataMeta(["first", "second"], ["no", "yes"], task="sequence")
    splits = DatasetDict({"train": split, "validation": split})
    write_saved(root / "tokenized", splits, meta.tokenized(64, "longest_first"))
    tokenizer.save_pretrained(str(root / "tokenizer"))
    return root / "tokenized", root / "tokenizer"


def with_range(**lr_range: object) -> LrRangeInputs:
    """What the stage passes for a 1-layer, hidden-16 model, with these lr_range values."""
    params = parse_params(
        {
            "seed": 7,
            "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
            "train": {"effective_batch_size": 16},
            "lr_range": lr_range,
        }
    )
    return LrRangeInputs.from_params(params)


def test_the_curve_rises_in_lr_and_the_suggestion_lies_inside_it(
    easy_data: tuple[Path, Path],
) -> None:
    data, tok = easy_data
    params = with_range(min_lr=1e-4, max_lr=1.0, steps=60, divergence=1e9)
    result = run_range_test(params, data, tok, PLAN, log=lambda _: None)
    assert len(result.lrs) == 60 and result.stop_reason == "completed"
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:], strict=False))
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(1.0)
    # exponential: a constant ratio between neighbours
    ratios = {round(b / a, 9) for a, b in zip(result.lrs, result.lrs[1:], strict=False)}
    assert len(ratios) == 1
    assert result.suggested_lr is not None, result.reason
    assert result.lrs[0] <= result.suggested_lr <= result.lrs[-1]
    assert result.minimum_lr is not None
    assert result.suggested_lr == pytest.approx(result.minimum_lr / 10)  # the default rule
    # the steepest descent lies where the loss was falling: not past the lowest-loss lr
    assert result.steepest_lr is not None and result.steepest_lr <= result.minimum_lr
    assert min(result.smoothed) < result.smoothed[0]


def test_a_diverging_loss_stops_the_test_early(easy_data: tuple[Path, Path]) -> None:
    """Up to lr 1e4 AdamW blows the loss up long before the last step."""
    data, tok = easy_data
    params = with_range(min_lr=1e-4, max_lr=1e4, steps=80, divergence=3.0)
    logged: list[str] = []
    result = run_range_test(params, data, tok, PLAN, log=logged.append)
    assert result.stop_reason == "diverged", logged  # the 3x rule, before any inf or NaN
    assert len(result.lrs) < 80
    assert result.smoothed[-1] > 3.0 * min(result.smoothed)
    assert any("exceeds 3x its best" in line for line in logged)


def test_the_same_seed_gives_the_same_curve(tiny_data: tuple[Path, Path]) -> None:
    data, tok = tiny_data
    params = with_range(min_lr=1e-4, max_lr=1.0, steps=12)
    a = run_range_test(params, data, tok, PLAN, log=lambda _: None)
    b = run_range_test(params, data, tok, PLAN, log=lambda _: None)
    assert len(a.losses) == 12 and a.stop_reason == "completed", "a curve to compare"
    assert a.losses == b.losses


def test_its_steps_are_the_train_stages_steps(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    """The range test builds the train stage's run and takes its steps: at the same rate its
    first two losses (on the initial weights, then after one update at min_lr) are the
    training loop's, bit for bit."""
    from nlpflow.training.loop import train
    from tests.training.tiny import tiny_params

    data, tok = tiny_data
    params = with_range(min_lr=3e-3, max_lr=1.0, steps=10)
    curve = run_range_test(params, data, tok, PLAN, log=lambda _: None)
    trained = train(
        tiny_params(lr=3e-3, schedule="constant", warmup_ratio=0.0, max_steps=2, epochs=1),
        data, tok, PLAN, tmp_path / "models", tmp_path / "checkpoints", log=lambda _: None,
    )  # fmt: skip
    assert [row["loss"] for row in trained.steps] == curve.losses[:2]
    assert curve.lrs[:2] == [pytest.approx(3e-3), pytest.approx(3e-3 * (1 / 3e-3) ** (1 / 9))]


def test_steepest_and_minimum_rules_on_a_known_curve() -> None:
    """A loss flat at 1, falling linearly in log10(lr) from 1e-3 to 1e-1, then rising."""
    lrs = [lr_at(i, 61, 1e-5, 10.0) for i in range(61)]  # 10 points per decade

    def loss(lr: float) -> float:
        x = math.log10(lr)
        if x < -3:
            return 1.0
        if x <= -1:
            return 1.0 - 0.4 * (x + 3)  # 0.2 at 1e-1
        return 0.2 + 2.0 * (x + 1)

    curve = [loss(lr) for lr in lrs]
    chosen, steepest, minimum, reason = suggest(lrs, curve, "steepest")
    assert reason == "" and minimum == pytest.approx(0.1)
    assert steepest is not None and 1e-3 <= steepest < 1e-1 and chosen == steepest
    chosen, _, _, _ = suggest(lrs, curve, "minimum")
    assert chosen == pytest.approx(0.01)
    # a minimum in the first decade: minimum / 10 was never tried, so no suggestion
    early = [0.5 if lr < 3e-5 else 0.1 + lr for lr in lrs]
    chosen, _, minimum, reason = suggest(lrs, early, "minimum")
    assert chosen is None and minimum is not None and minimum < 1e-4
    assert "lower lr_range.min_lr" in reason


def test_no_suggestion_from_a_flat_curve_or_too_few_points() -> None:
    lrs = [lr_at(i, 30, 1e-6, 1.0) for i in range(30)]
    chosen, _, _, reason = suggest(lrs, [0.69] * 30, "steepest")
    assert chosen is None and "never fell" in reason
    chosen, _, _, reason = suggest(lrs[:3], [0.7, 0.6, 5.0], "steepest")
    assert chosen is None and "lower lr_range.min_lr" in reason


def test_smoother_is_bias_corrected() -> None:
    smoother = Smoother(0.1)
    assert smoother(2.0) == pytest.approx(2.0)  # not 0.2: the start is not pulled to 0
    # a real average: (0.9 * 0.2 + 0.1 * 4.0) / (1 - 0.9**2), worked by hand
    assert smoother(4.0) == pytest.approx(0.58 / 0.19)
    assert Smoother(1.0)(5.0) == 5.0


def test_the_stage_writes_every_output(tmp_path: Path, tiny_data: tuple[Path, Path]) -> None:
    from stages import lr_range as stage
    from tests.training.tiny import write_params

    data, tok = tiny_data
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN.to_json()))
    raw = {
        "seed": 7,
        "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
        "train": {"effective_batch_size": 16},
        "lr_range": {"steps": 15, "min_lr": 1e-4, "max_lr": 1.0},
    }
    out = tmp_path / "out"
    argv = ["--data", str(data), "--tokenizer", str(tok), "--probe", str(plan),
            "--metrics", str(out / "m.json"), "--plot", str(out / "c.tsv"),
            "--image", str(out / "c.png")]  # fmt: skip
    assert stage.main(["--params", str(write_params(tmp_path / "p.yaml", raw)), *argv]) == 0
    metrics = json.loads((out / "m.json").read_text())
    rows = list(csv.DictReader((out / "c.tsv").read_text().splitlines(), delimiter="\t"))
    assert metrics["steps_run"] == len(rows) > 0
    assert [float(r["lr"]) for r in rows] == sorted(float(r["lr"]) for r in rows)
    assert (out / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert "seconds" not in metrics  # results only: a rerun leaves the file identical

    raw["lr_range"]["enabled"] = False  # type: ignore[index]
    assert stage.main(["--params", str(write_params(tmp_path / "p.yaml", raw)), *argv]) == 0
    metrics = json.loads((out / "m.json").read_text())
    assert metrics["suggested_lr"] is None and metrics["stop_reason"] == "disabled"
    assert (out / "c.tsv").read_text().splitlines() == ["step\tlr\tlog10_lr\tloss\tsmoothed_loss"]


def test_read_suggestion_and_centring(tmp_path: Path) -> None:
    path = tmp_path / "lr_range.json"
    with pytest.raises(UserError) as missing:
        read_suggestion(path)
    assert "dvc repro lr_range" in str(missing.value)
    path.write_text(json.dumps({"suggested_lr": None, "reason": "the smoothed loss never fell"}))
    with pytest.raises(UserError) as empty:
        read_suggestion(path)
    assert "never fell" in str(empty.value)
    path.write_text(json.dumps({"suggested_lr": 0.004}))
    assert read_suggestion(path) == 0.004
    low, high = centred_range(0.0003, 0.03, 0.004)  # a factor 10 each side, kept
    assert (low, high) == (0.0004, 0.04)
    assert math.sqrt(low * high) == pytest.approx(0.004)
