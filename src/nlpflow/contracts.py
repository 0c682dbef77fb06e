"""What each stage may read of params.yaml, declared once.

A stage builds its inputs with ``XInputs.from_params(params)`` and passes them to the library
instead of the whole :class:`~nlpflow.params.Params`. An inputs class is a frozen dataclass
whose field names are params.yaml's top-level keys (``seed``, ``model``, ``train``...). A
field typed with a section's own class (``ModelParams``) reads the whole section; a field
typed with a :class:`Subset` of a section (``ProbeModel``) reads only the keys that subset
names. So ``inputs.train.lr`` reads as ``params.train.lr`` did, and :meth:`StageInputs.keys`
lists the params.yaml keys a stage reads (what its ``params:`` in dvc.yaml must be, see
:mod:`nlpflow.dvcdeps`). The probe's cache key and the checkpoint's run hash are
:meth:`StageInputs.as_dict` of these classes: no list of keys is written twice.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from nlpflow.families.text2text.params import Text2TextModelParams
from nlpflow.params import (
    DataParams,
    ErrorAnalysisParams,
    EvaluateParams,
    LoraParams,
    LrRangeParams,
    ModelParams,
    Params,
    ProbeParams,
    TokenizerParams,
    TrainParams,
)

T = TypeVar("T", bound="StageInputs")


@dataclass(frozen=True)
class Subset:
    """Some keys of one params section: each field is named after a key of ``SECTION``."""

    SECTION: ClassVar[type]


@dataclass(frozen=True)
class ModelName(Subset):
    """Which pretrained model, if any: the model_source stage fingerprints it."""

    SECTION: ClassVar[type] = ModelParams
    name_or_path: str


@dataclass(frozen=True)
class TokenizeModel(Subset):
    """The model keys the tokenize stage reads: where a pretrained tokenizer comes from, and
    for a text-to-text task how prompts and targets are encoded."""

    SECTION: ClassVar[type] = ModelParams
    name_or_path: str
    trust_remote_code: bool
    text2text: Text2TextModelParams


@dataclass(frozen=True)
class ProbeModel(Subset):
    """The model's shape: what one training step holds in memory (not the dropout rate).
    ``lora``: with LoRA only the adapters (and a new head) have gradients and optimizer
    state, so a step holds far less than whole fine-tuning's."""

    SECTION: ClassVar[type] = ModelParams
    name_or_path: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    freeze_embeddings: bool
    trust_remote_code: bool
    # Text-to-text: which architecture (encoder-decoder or decoder-only) is built.
    text2text: Text2TextModelParams
    lora: LoraParams

    def with_dropout(self, dropout: float | None) -> ModelParams:
        """The full model section of this shape with ``dropout``, for ``build_model``."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return ModelParams(**fields, dropout=dropout)


@dataclass(frozen=True)
class ProbeTrain(Subset):
    """The train keys that change what one training step holds or how fast it runs."""

    SECTION: ClassVar[type] = TrainParams
    effective_batch_size: int
    optimizer: str
    momentum: float
    precision: str
    threads: int


@dataclass(frozen=True)
class LrRangeTrain(Subset):
    """The train keys that shape one training step, for the range test (not lr, the schedule
    or epochs: the test sets the rate itself, so tuning those never reruns it)."""

    SECTION: ClassVar[type] = TrainParams
    effective_batch_size: int
    optimizer: str
    momentum: float
    weight_decay: float
    max_grad_norm: float
    label_smoothing: float
    class_weights: Literal["none", "balanced"] | dict[str, float]
    loss: str
    huber_delta: float
    batching: Literal["length_grouped", "random"]
    precision: str
    threads: int


@dataclass(frozen=True)
class EvaluateLevel(Subset):
    """The level of the intervals evaluate computed, for reports that show them."""

    SECTION: ClassVar[type] = EvaluateParams
    confidence_level: float


@dataclass(frozen=True)
class StageInputs:
    """Base of the per-stage inputs: building, listing keys, hashing."""

    @classmethod
    def from_params(cls: type[T], params: Params) -> T:
        """The values of ``params`` this stage reads, deep-copied (a later change to
        ``params`` does not reach them). Reading an undeclared key of a subset is an
        AttributeError at run time and an error for mypy."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            section = getattr(params, f.name)
            tp = hints[f.name]
            if _is_subset(tp):
                values[f.name] = tp(
                    **{
                        g.name: copy.deepcopy(getattr(section, g.name))
                        for g in dataclasses.fields(tp)
                    }
                )
            else:
                values[f.name] = copy.deepcopy(section)
        return cls(**values)

    @classmethod
    def keys(cls) -> list[str]:
        """The params.yaml keys this stage reads, in dvc.yaml's ``params:`` spelling."""
        hints = typing.get_type_hints(cls)
        out: list[str] = []
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if _is_subset(tp):
                out.extend(f"{f.name}.{g.name}" for g in dataclasses.fields(tp))
            else:
                out.append(f.name)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Plain values by params.yaml section (for hashes and cache keys)."""
        return dataclasses.asdict(self)


def _is_subset(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Subset)


@dataclass(frozen=True)
class PreprocessInputs(StageInputs):
    seed: int
    data: DataParams


@dataclass(frozen=True)
class TokenizeInputs(StageInputs):
    seed: int  # draws tokenizer.train_sample
    tokenizer: TokenizerParams
    model: TokenizeModel


@dataclass(frozen=True)
class ModelSourceInputs(StageInputs):
    """The model_source stage: fingerprints the pretrained model a stage would load."""

    model: ModelName


@dataclass(frozen=True)
class ProbeInputs(StageInputs):
    model: ProbeModel
    probe: ProbeParams
    train: ProbeTrain


@dataclass(frozen=True)
class TrainInputs(StageInputs):
    seed: int
    model: ModelParams
    train: TrainParams


@dataclass(frozen=True)
class LrRangeInputs(StageInputs):
    seed: int
    model: ModelParams
    lr_range: LrRangeParams
    train: LrRangeTrain


@dataclass(frozen=True)
class EvaluateModel(Subset):
    """The base model a text-to-text evaluation prompts beside the fine-tuned one: the
    pretrained model, or (name_or_path empty) the untrained one train started from."""

    SECTION: ClassVar[type] = ModelParams
    name_or_path: str
    trust_remote_code: bool


@dataclass(frozen=True)
class EvaluateInputs(StageInputs):
    seed: int
    evaluate: EvaluateParams
    model: EvaluateModel


@dataclass(frozen=True)
class ErrorAnalysisInputs(StageInputs):
    seed: int
    error_analysis: ErrorAnalysisParams
    evaluate: EvaluateLevel


@dataclass(frozen=True)
class ModelCardInputs(StageInputs):
    """The model card shows the params that made the model and its evaluation."""

    seed: int
    data: DataParams
    tokenizer: TokenizerParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams


# One entry per dvc.yaml stage (its name is stages/<name>.py's).
STAGE_INPUTS: dict[str, type[StageInputs]] = {
    "preprocess": PreprocessInputs,
    "model_source": ModelSourceInputs,
    "tokenize": TokenizeInputs,
    "probe": ProbeInputs,
    "lr_range": LrRangeInputs,
    "train": TrainInputs,
    "evaluate": EvaluateInputs,
    "error_analysis": ErrorAnalysisInputs,
    "model_card": ModelCardInputs,
}
