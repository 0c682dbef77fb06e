"""What a study is: its settings, stored with the study so every worker and trial agrees.

``nlpflow tune`` writes a :class:`StudyConfig` into the study's user attributes when it creates
the study. A worker that joins (another machine, a resumed run) checks that its own settings
match; the train stage of a trial reads it to build the same pruner.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

CONFIG_ATTR = "nlpflow_config"
SEEDS_SUFFIX = ".seeds"  # the study holding the seed reruns of the top configurations


@dataclass
class StudyConfig:
    study: str
    sampler: str
    sampler_seed: int
    objectives: list[dict[str, str]]  # {"metric": "FILE:KEY", "direction": "maximize"}
    constraints: list[dict[str, Any]] = field(default_factory=list)  # {"metric", "min", "max"}
    pruner: dict[str, Any] = field(default_factory=dict)  # TunePrunerParams as a dict
    space: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0  # train.epochs: the budget every trial trains with
    # Evaluations (pruning steps) in a full run: the epochs, unless the train stage validates
    # every N steps or stops at max_steps; 0 = unknown (Hyperband infers it from a trial).
    evaluations: int = 0
    baseline: str = ""  # the git commit the trials are experiments of
    global_seed: int = 0  # params.yaml's seed: seed reruns start from it

    @property
    def objective_metrics(self) -> list[str]:
        return [o["metric"] for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        """Every metric a trial's experiment must give: objectives, then constraints."""
        return self.objective_metrics + [c["metric"] for c in self.constraints]

    @property
    def directions(self) -> list[str]:
        return [o["direction"] for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def pruning(self) -> bool:
        return self.pruner.get("kind", "none") != "none" and not self.multi_objective

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyConfig:
        return cls(**data)

    @classmethod
    def of_study(cls, study: optuna.Study) -> StudyConfig | None:
        data = study.user_attrs.get(CONFIG_ATTR)
        return cls.from_json(data) if data else None

    def differences(self, other: StudyConfig) -> list[str]:
        """Settings that differ and would make the study's trials incomparable."""
        keys = ("objectives", "constraints", "pruner", "space", "epochs", "sampler")
        mine, theirs = self.to_json(), other.to_json()
        return [k for k in keys if mine[k] != theirs[k]]


def build_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The study's pruner. Steps are the train stage's 1-based evaluations: one per epoch
    (plots/train/epochs.tsv) unless train.eval_every_steps asks for more."""
    import optuna

    spec = config.pruner
    kind = spec.get("kind", "none")
    if not config.pruning or kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        # Optuna does not prune at step < n_warmup_steps: epochs 1..warmup_epochs are safe.
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(spec.get("startup_trials", 3)),
            n_warmup_steps=int(spec.get("warmup_epochs", 1)) + 1,
            interval_steps=1,
        )
    if kind == "hyperband":
        low = int(spec.get("min_epochs", 1))
        high: int | str = max(config.evaluations, low + 1) if config.evaluations else "auto"
        return optuna.pruners.HyperbandPruner(
            min_resource=low,
            max_resource=high,
            reduction_factor=int(spec.get("reduction_factor", 3)),
        )
    raise ValueError(f"unknown pruner {kind!r}")  # params.py validated it: a bug


def short_number(value: Any) -> str:
    """A value as the console and the report show it: 4 significant digits, 3 in e-notation."""
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return "-" if value is None else str(value)
