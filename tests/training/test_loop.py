"""The training loop on tiny data: resume anywhere, stale checkpoints, stops, accumulation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from nlpflow.params import Params
from nlpflow.training.loop import TrainResult, train
from nlpflow.training.probe import BatchPlan
from tests.training.tiny import tiny_params

PLAN = BatchPlan(device="cpu", batch_size=8, accumulation_steps=2, max_fitting_batch_size=64)
TIMINGS = {"seconds", "train_seconds", "examples_per_second", "resumed_from_step"}


class Interrupted(Exception):
    """Stands in for a crash after a checkpoint was written."""


def run(
    data: tuple[Path, Path],
    out: Path,
    params: Params,
    plan: BatchPlan = PLAN,
    **kwargs: Any,
) -> tuple[TrainResult, list[str]]:
    data_dir, tok_dir = data
    lines: list[str] = []
    result = train(
        params, data_dir, tok_dir, plan, out / "models", out / "checkpoints",
        log=lines.append, **kwargs,
    )  # fmt: skip
    return result, lines


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def without_timings(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in TIMINGS}


# 96 rows / 16 per step = 6 steps per epoch; 3 epochs = 18 steps. Crash points: right after
# the first step, mid-epoch, at an epoch end, and just before the end.
@pytest.mark.parametrize("crash_at", [1, 4, 6, 11, 17])
def test_interrupted_anywhere_and_resumed_equals_uninterrupted(
    tiny_data: tuple[Path, Path], tmp_path: Path, crash_at: int
) -> None:
    params = tiny_params(epochs=3, checkpoint_every_steps=1)
    full, _ = run(tiny_data, tmp_path / "full", params)

    def crash(step: int) -> None:
        if step == crash_at:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(tiny_data, tmp_path / "cut", params, on_checkpoint=crash)
    assert not (tmp_path / "cut" / "models").exists(), "no model before the run ends"
    resumed, lines = run(tiny_data, tmp_path / "cut", params)

    assert any(line.startswith(f"resuming from step {crash_at},") for line in lines), lines
    assert resumed.summary["resumed_from_step"] == crash_at
    assert full.summary["resumed_from_step"] is None
    for kind in ("last", "best"):
        assert_same_weights(tmp_path / "full/models" / kind, tmp_path / "cut/models" / kind)
    assert resumed.steps == full.steps  # losses, lrs and grad norms, bit for bit
    assert resumed.epochs == full.epochs
    assert without_timings(resumed.summary) == without_timings(full.summary)


def test_resume_with_step_evaluations_mid_period(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    # Validation every 4 steps, checkpoints every 3: a crash at step 9 falls between two
    # evaluations, so the running train loss of the period must be restored too.
    params = tiny_params(epochs=2, eval_every_steps=4, checkpoint_every_steps=3)
    full, _ = run(tiny_data, tmp_path / "full", params)
    assert [r["step"] for r in full.epochs] == [4, 8, 12]
    assert [r["epoch"] for r in full.epochs] == [0.667, 1.333, 2]

    def crash(step: int) -> None:
        if step == 9:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(tiny_data, tmp_path / "cut", params, on_checkpoint=crash)
    resumed, _ = run(tiny_data, tmp_path / "cut", params)
    assert resumed.epochs == full.epochs and resumed.steps == full.steps
    assert_same_weights(tmp_path / "full/models/last", tmp_path / "cut/models/last")


def test_same_params_give_bit_identical_weights(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    params = tiny_params(epochs=2)
    run(tiny_data, tmp_path / "a", params)
    run(tiny_data, tmp_path / "b", params)
    assert_same_weights(tmp_path / "a/models/last", tmp_path / "b/models/last")


def test_checkpoint_of_other_params_is_not_resumed(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    run(tiny_data, tmp_path, tiny_params(epochs=2, lr=3e-3))
    changed, lines = run(tiny_data, tmp_path, tiny_params(epochs=2, lr=1e-3))

    assert changed.summary["resumed_from_step"] is None
    assert not any(line.startswith("resuming from") for line in lines)
    message = next(line for line in lines if "other params" in line)
    assert "section train differs" in message
    assert "train.lr 0.003 -> 0.001" in message
    assert "starting fresh" in message
    # What is left is this run's alone.
    metas = [
        json.loads((p / "meta.json").read_text()) for p in (tmp_path / "checkpoints").iterdir()
    ]
    assert {m["sections"]["train"]["lr"] for m in metas} == {1e-3}


def test_bookkeeping_params_do_not_block_a_resume(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    run(tiny_data, tmp_path, tiny_params(epochs=1, keep_checkpoints=2))
    again, lines = run(tiny_data, tmp_path, tiny_params(epochs=1, keep_checkpoints=3))
    assert again.summary["resumed_from_step"] == 6, lines


def test_other_probe_split_is_not_resumed(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    run(tiny_data, tmp_path, tiny_params(epochs=1))
    other = BatchPlan("cpu", batch_size=16, accumulation_steps=1, max_fitting_batch_size=64)
    result, lines = run(tiny_data, tmp_path, tiny_params(epochs=1), plan=other)
    assert result.summary["resumed_from_step"] is None
    assert any("section probe differs" in line for line in lines)


def test_keeps_the_last_checkpoints_and_best(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    result, _ = run(tiny_data, tmp_path, tiny_params(epochs=4, checkpoint_every_steps=4))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best", "step-20", "step-24"]
    best = json.loads((tmp_path / "checkpoints/best/meta.json").read_text())
    assert best["step"] == result.summary["best_step"]
    assert best["epoch"] == result.summary["best_epoch"]
    meta = json.loads((tmp_path / "checkpoints/step-24/meta.json").read_text())
    assert meta["step"] == 24 and meta["epoch"] == 4
    assert meta["sections"]["train"]["lr"] == 3e-3  # the params that produced it
    # Loop state loads with weights_only=True: no pickled code in a checkpoint.
    state = torch.load(tmp_path / "checkpoints/step-24/state.pt", weights_only=True)
    assert state["loop"]["step"] == 24 == result.summary["steps"]
    assert state["loop"]["epoch_step"] == 0
    assert set(state["rng"][0]) >= {"python", "numpy", "torch", "shuffle"}
    assert {"optimizer", "scheduler", "early_stopping"} <= set(state)


def test_a_checkpoint_missing_a_part_is_one_clear_error(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    from nlpflow.errors import UserError

    run(tiny_data, tmp_path, tiny_params(epochs=1))
    path = tmp_path / "checkpoints/step-6/state.pt"
    state = torch.load(path, weights_only=True)
    del state["early_stopping"]
    torch.save(state, path)
    with pytest.raises(UserError) as err:
        run(tiny_data, tmp_path, tiny_params(epochs=1))
    assert "step-6 lacks 'early_stopping'" in str(err.value)
    assert "delete" in str(err.value) and "to start fresh" in str(err.value)


def test_rerun_after_completion_resumes_without_training(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = run(tiny_data, tmp_path, tiny_params(epochs=2))
    again, lines = run(tiny_data, tmp_path, tiny_params(epochs=2))
    assert any(line.startswith("resuming from step 12, epoch 2 ") for line in lines)
    assert again.steps == first.steps
    assert again.summary["stop_reason"] == first.summary["stop_reason"] == "max_epochs"


def test_nan_loss_stops_at_once(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    # An absurd learning rate makes the weights overflow float32 after one step.
    params = tiny_params(epochs=3, lr=1e30, warmup_ratio=0.0, max_grad_norm=0.0)
    result, lines = run(tiny_data, tmp_path, params)
    summary = result.summary
    assert summary["stop_reason"] == "non_finite_loss"
    assert "non-finite loss" in summary["stop_detail"]
    assert summary["steps"] == 1  # the step with the NaN loss was not taken
    assert summary["epochs_run"] == 0.167
    assert all(row["loss"] is not None for row in result.steps)
    assert any(line.startswith("stopping: non-finite loss") for line in lines)
    json.dumps(summary, allow_nan=False)  # NaN never reaches the metrics file
    assert (tmp_path / "models/best/config.json").exists()


def test_early_stopping_records_its_reason(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    # lr so small nothing changes: the monitored loss cannot improve by min_delta.
    params = tiny_params(
        epochs=10,
        lr=1e-9,
        early_stopping={"metric": "loss", "mode": "min", "patience": 2, "min_delta": 0.1},
    )
    result, lines = run(tiny_data, tmp_path, params)
    assert result.summary["stop_reason"] == "early_stopping"
    assert result.summary["epochs_run"] == 3  # best at 1, then 2 evaluations without
    assert result.summary["best_epoch"] == 1
    assert result.summary["monitor"]["metric"] == "loss"
    assert "patience 2" in result.summary["stop_detail"]
    assert any(line.startswith("early stopping:") for line in lines)


def test_target_and_divergence_thresholds_stop(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    target = {"metric": "loss", "mode": "min", "patience": 0, "target": 10.0}
    result, lines = run(tiny_data, tmp_path / "t", tiny_params(epochs=5, early_stopping=target))
    assert result.summary["stop_reason"] == "target_reached"
    assert result.summary["epochs_run"] == 1
    assert "reached the target 10" in result.summary["stop_detail"]
    assert any(line.startswith("target reached:") for line in lines)

    diverge = {"metric": "accuracy", "mode": "max", "patience": 0, "divergence": 0.99}
    result, _ = run(tiny_data, tmp_path / "d", tiny_params(epochs=5, early_stopping=diverge))
    assert result.summary["stop_reason"] == "diverged"
    assert "below the divergence threshold 0.99" in result.summary["stop_detail"]


def test_max_steps_stops_mid_epoch_and_evaluates(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    result, _ = run(tiny_data, tmp_path, tiny_params(epochs=5, max_steps=8))
    assert result.summary["steps"] == 8
    assert result.summary["stop_reason"] == "max_steps"
    assert [r["step"] for r in result.epochs] == [6, 8]  # epoch 1's end, then the last step
    assert result.steps[-1]["lr"] > 0  # the schedule ends at max_steps, not at 5 epochs


def test_gradient_accumulation_keeps_the_effective_batch(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    # Without dropout, 16 x 1, 8 x 2 and 5 x 4 (micro-batches 4, 4, 4, 4) are the same
    # optimisation up to rounding.
    params = tiny_params(epochs=1)
    params.model.dropout = 0.0
    out = {}
    for batch, accumulation in [(16, 1), (8, 2), (4, 4)]:
        plan = BatchPlan("cpu", batch, accumulation, 64)
        result, _ = run(tiny_data, tmp_path / f"{batch}", params, plan=plan)
        assert result.summary["steps"] == 6  # 96 rows / 16 per step
        out[batch] = weights(tmp_path / f"{batch}/models/last")
    for name, ref in out[16].items():
        for batch in (8, 4):
            torch.testing.assert_close(out[batch][name], ref, rtol=1e-4, atol=1e-5)


def test_outputs_load_with_pipeline_and_summary_says_how(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    from transformers import pipeline

    result, lines = run(tiny_data, tmp_path, tiny_params(epochs=2))
    summary = result.summary
    assert summary["setup"]["processes"] == 1 and summary["setup"]["precision"] == "fp32"
    assert 0 < summary["padding_efficiency"] <= 1
    assert summary["pruned"] == 0
    assert summary["health"]["status"] in ("ok", "warning", "error")
    # The initial-loss check on a real run: a fresh model starts at a uniform guess's loss.
    initial = summary["health"]["initial_loss"]
    assert initial["uniform"] == math.log(2) and initial["first_step"] == result.steps[0]["loss"]
    assert abs(initial["gap"]) < 0.05 and "initial_loss" not in summary["health"]["rules"]
    assert any(line.startswith("health: initial loss 0.69") for line in lines)
    assert set(summary["final"]) == {
        "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1_macro",
    }  # fmt: skip
    classify = pipeline("text-classification", model=str(tmp_path / "models/best"), device="cpu")
    assert classify("a b c d")[0]["label"] in ("no", "yes")
    assert any(line.startswith("train: sequence task, 2 labels") for line in lines)


def test_length_grouped_batches_pad_less_than_random(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    grouped, _ = run(tiny_data, tmp_path / "g", tiny_params(epochs=1))
    shuffled, _ = run(tiny_data, tmp_path / "r", tiny_params(epochs=1, batching="random"))
    assert grouped.summary["padding_efficiency"] > shuffled.summary["padding_efficiency"]


def test_sgd_one_cycle_class_weights_and_smoothing_train(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    params = tiny_params(
        epochs=2, optimizer="sgd", lr=0.05, schedule="one_cycle", warmup_steps=3,
        class_weights="balanced", label_smoothing=0.1,
    )  # fmt: skip
    result, lines = run(tiny_data, tmp_path, params)
    lrs = [r["lr"] for r in result.steps]
    assert lrs[0] == pytest.approx(0.05 * 0.04 + (0.05 - 0.05 * 0.04) * 0.25)  # 1/3 up the cosine
    assert lrs[2] == pytest.approx(0.05)
    assert lrs[-1] < 0.01
    assert "sgd lr 0.05 (one_cycle, warm-up 3 steps)" in lines[0]
    assert result.summary["final"]["val_loss"] is not None


def test_freeze_embeddings_leaves_them_untouched(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    params = tiny_params(epochs=1)
    params.model.freeze_embeddings = True
    torch.manual_seed(params.seed)
    result, lines = run(tiny_data, tmp_path, params)
    params.model.freeze_embeddings = False
    run(tiny_data, tmp_path / "free", params)
    frozen, free = weights(tmp_path / "models/last"), weights(tmp_path / "free/models/last")
    name = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(frozen[name], free[name]), "training moves unfrozen embeddings"
    # Frozen: still the initial weights, which the same seed builds in both runs.
    from nlpflow.modeling.build import build_model
    from nlpflow.modeling.tokenizers import load_tokenizer
    from nlpflow.seeding import seed_everything

    seed_everything(params.seed)
    fresh = build_model(params.model, load_tokenizer(tiny_data[1]), ["no", "yes"], 15)
    assert torch.equal(frozen[name], fresh.state_dict()[name])
    assert "trained)" in lines[0] and result.summary["steps"] == 6


class FakeTrial:
    """A tuning trial whose pruner gives up at the second evaluation."""

    metric = "accuracy"
    detail = ""

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []
        self.asked: list[bool] = []

    def report(self, epoch: int, value: float, ask: bool = True) -> bool:
        self.reports.append((epoch, value))
        self.asked.append(ask)
        if epoch == 2:
            self.detail = "pruned by the median pruner at epoch 2"
            return True
        return False


def test_pruning_stops_and_a_rerun_trains_on(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    trial = FakeTrial()
    pruned, lines = run(tiny_data, tmp_path, tiny_params(epochs=4), pruning=trial)
    assert pruned.summary["stop_reason"] == "pruned" and pruned.summary["pruned"] == 1
    assert pruned.summary["stop_detail"] == "pruned by the median pruner at epoch 2"
    assert [e for e, _ in trial.reports] == [1, 2]
    assert trial.reports[0][1] == pruned.epochs[0]["val_accuracy"]  # the trial's metric
    assert any(line.startswith("pruned: pruned by the median pruner") for line in lines)
    assert (tmp_path / "models/best/config.json").exists()

    # A run that ends by itself still reports its last evaluation, without asking to prune.
    last = FakeTrial()
    done, _ = run(tiny_data, tmp_path / "done", tiny_params(epochs=1), pruning=last)
    assert done.summary["stop_reason"] == "max_epochs" and done.summary["pruned"] == 0
    assert last.reports == [(1, done.epochs[0]["val_accuracy"])] and last.asked == [False]

    # Outside tuning, the same params resume the pruned run's checkpoint and train on.
    rerun, lines = run(tiny_data, tmp_path, tiny_params(epochs=4))
    assert rerun.summary["stop_reason"] == "max_epochs" and rerun.summary["pruned"] == 0
    assert rerun.summary["resumed_from_step"] == 12
    assert any("pruned by tuning; this run trains on" in line for line in lines)


def test_overfit_batches_reaches_near_zero(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    params = tiny_params(epochs=60, overfit_batches=1, lr=1e-2, warmup_ratio=0.0)
    result, lines = run(tiny_data, tmp_path, params)
    report = result.summary["overfit_batches"]
    assert report["batches"] == 1 and report["examples"] == 16
    assert report["reached_near_zero"] is True, report
    assert report["best_loss"] < 0.05 < report["first_loss"]
    assert result.summary["stop_reason"] == "target_reached"  # stops once it is there
    assert any(line.startswith("overfit check passed") for line in lines)
    assert "dropout, weight decay and label smoothing off" in lines[1]


def test_overfit_batches_reports_a_model_that_cannot_learn(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    params = tiny_params(epochs=3, overfit_batches=1, lr=1e-9)
    result, lines = run(tiny_data, tmp_path, params)
    assert result.summary["overfit_batches"]["reached_near_zero"] is False
    assert any(line.startswith("overfit check FAILED") for line in lines)


def test_token_classification(tiny_token_data: tuple[Path, Path], tmp_path: Path) -> None:
    from transformers import pipeline

    params = tiny_params(
        epochs=4, lr=1e-2, early_stopping={"metric": "entity_f1", "mode": "max", "patience": 4}
    )
    result, lines = run(tiny_token_data, tmp_path, params)
    assert "train: token task, 4 labels" in lines[0]
    assert "val_entity_f1" in result.eval_columns
    first, last = result.epochs[0], result.epochs[-1]
    assert last["val_loss"] < first["val_loss"]
    assert 0 <= last["val_entity_f1"] <= 1
    initial = result.summary["health"]["initial_loss"]  # over the 4 tags
    assert initial["uniform"] == math.log(4) and abs(initial["gap"]) < 0.1
    assert "initial_loss" not in result.summary["health"]["rules"]
    config = json.loads((tmp_path / "models/best/config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-LOC"}
    tagger = pipeline("token-classification", model=str(tmp_path / "models/best"), device="cpu")
    assert all(t["entity"] in config["id2label"].values() for t in tagger("ada met in paris"))


def test_entity_f1_needs_a_token_task(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    from nlpflow.errors import UserError

    params = tiny_params(early_stopping={"metric": "entity_f1", "mode": "max"})
    with pytest.raises(UserError, match="entity_f1 needs a token task"):
        run(tiny_data, tmp_path, params)


def test_a_pretrained_model_trains_in_training_mode(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    """`from_pretrained` returns a model in eval mode: every training forward must still run
    with dropout on (a regression of the loop's split into parts trained MiniLM in eval mode)."""
    from transformers import AutoModelForSequenceClassification, PreTrainedModel

    from nlpflow.modeling.build import build_model
    from nlpflow.modeling.tokenizers import load_tokenizer

    params = tiny_params(epochs=1)
    tokenizer = load_tokenizer(tiny_data[1])
    pretrained = tmp_path / "pretrained"
    build_model(params.model, tokenizer, ["no", "yes"], 15).save_pretrained(str(pretrained))
    tokenizer.save_pretrained(str(pretrained))
    params.model.name_or_path = str(pretrained)
    modes: list[bool] = []
    original = PreTrainedModel.post_init

    def record_modes(self: PreTrainedModel) -> None:
        original(self)
        if type(self).__name__.endswith("ForSequenceClassification"):  # the head, not the body
            self.register_forward_pre_hook(lambda module, args: modes.append(module.training))

    loaded = AutoModelForSequenceClassification.from_pretrained(str(pretrained))
    assert not loaded.training, "from_pretrained gives eval mode: the premise of this test"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PreTrainedModel, "post_init", record_modes)
        run(tiny_data, tmp_path / "out", params)
    assert True in modes, "no forward ran in training mode"
    # 6 training steps of 2 micro-batches; validation forwards run in eval mode.
    assert modes.count(True) == 12
