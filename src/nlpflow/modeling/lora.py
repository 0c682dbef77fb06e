"""LoRA with ``peft``: adapters on a pretrained model, their parameter counts, merging,
saving and loading.

The pretrained weights are frozen; each target module (a linear map ``W``, ``(out, in)``)
gets ``B A`` beside it, ``A`` ``(rank, in)`` and ``B`` ``(out, rank)``, with ``B`` starting at
zero so the adapted model starts as the base; its output is ``W x + alpha / rank * B A x``.
A task head (classifier, regression output, QA span scorer, multiple-choice scorer) is new,
so it trains whole (peft's ``modules_to_save``): every family but text2text, whose language
model head is pretrained.

``model.lora.target_modules: auto`` is peft's own table of attention projections per
architecture (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``, by ``config.model_type``):
GPT-2 ``c_attn``, T5 ``q``/``v``, BERT ``query``/``value``, Llama ``q_proj``/``v_proj``.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError

if TYPE_CHECKING:
    from nlpflow.params import LoraParams

# config.json key of a model trained with LoRA: the base, the adapter's settings, the counts.
CONFIG_KEY = "nlpflow_lora"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# peft's task type of each family that has one (it wraps the forward accordingly); multiple
# choice has none (a plain PeftModel). Which modules train whole is nlpflow's choice, for
# every family but text2text: the heads (:func:`head_modules`).
TASK_TYPES = {
    "sequence": "SEQ_CLS",
    "regression": "SEQ_CLS",
    "multilabel": "SEQ_CLS",
    "token": "TOKEN_CLS",
    "qa": "QUESTION_ANS",
    "choice": None,
}


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft 0.21 asks transformers 5 for ``is_gradient_checkpointing``, which warns that it
    is deprecated: not ours to fix, and an error under pytest's ``-W error``."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        yield


def target_modules(model: Any, lora: LoraParams) -> list[str]:
    """The module names LoRA adapts: ``lora.target_modules``, or for ``auto`` peft's choice
    for ``model.config.model_type``. A UserError when ``auto`` knows no choice for the
    architecture or a named module is not in the model."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if lora.target_modules == "auto":
        kind = model.config.model_type
        found = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(kind)
        if not found:
            raise UserError(
                f"params.yaml: model.lora.target_modules auto: peft has no default for "
                f"'{kind}' models; list the attention projections to adapt (the model's "
                f"linear layers include {sorted(_linear_leaves(model))[:8]})"
            )
        return list(found)
    names = list(lora.target_modules)
    missing = [n for n in names if n not in leaves]
    if missing:
        raise UserError(
            f"params.yaml: model.lora.target_modules {missing} are not modules of this "
            f"{model.config.model_type} model; its linear layers: "
            f"{sorted(_linear_leaves(model))[:12]}"
        )
    return names


def _linear_leaves(model: Any) -> set[str]:
    import torch
    from transformers.pytorch_utils import Conv1D

    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | Conv1D)
    }


def apply_lora(model: Any, lora: LoraParams, task: str) -> Any:
    """``model`` wrapped by peft with fresh adapters (``B`` zero: outputs unchanged), only
    the adapters and the task head (:func:`head_modules`; text2text: none) trainable.
    ``task``: the family's name.

    Raises UserError for a task family LoRA is not wired for, or unknown target modules.
    """
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    heads: list[str] | None = None
    if task == "text2text":
        task_type: str | None = "SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM"
    elif task in TASK_TYPES:
        task_type, heads = TASK_TYPES[task], head_modules(model)
    else:
        raise UserError(
            f"params.yaml: model.lora is not wired for {task} tasks; set model.lora.enabled: false"
        )
    targets = target_modules(model, lora)
    # GPT-2's projections are Conv1D, (in, out) weights: peft must transpose them.
    fan_in_fan_out = any(
        isinstance(module, Conv1D)
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] in targets
    )
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        fan_in_fan_out=fan_in_fan_out,
        task_type=task_type,
        modules_to_save=heads,
    )
    with _quiet_peft():
        return get_peft_model(model, config)


def head_modules(model: Any) -> list[str]:
    """The task head(s) of a transformers model, which train whole under LoRA: its top-level
    modules with parameters other than the base model (``model.base_model_prefix``), e.g.
    BERT's ``classifier``, QA's ``qa_outputs``, GPT-2's ``score``, and DeBERTa's ``pooler``
    beside its ``classifier`` (new weights too: frozen, they would stay random)."""
    base = getattr(model, "base_model_prefix", "")
    return sorted(
        name
        for name, module in model.named_children()
        if name != base and any(True for _ in module.parameters())
    )


def is_lora(model: Any) -> bool:
    """Whether ``model`` is a peft model (peft is only imported by runs that use it)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def parameter_counts(model: Any) -> dict[str, Any]:
    """``total`` parameters (a LoRA model's: the base's and the adapters'), ``trainable`` ones
    (those with ``requires_grad``) and ``trainable_share`` (trainable / total, 6 decimals).
    Tied weights (GPT-2's input and output embeddings) count once."""
    seen: set[int] = set()
    total = trainable = 0
    for param in model.parameters():  # parameters() yields a shared tensor once
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return {
        "total": total,
        "trainable": trainable,
        "trainable_share": round(trainable / total, 6) if total else None,
    }


def lora_record(model: Any, lora: LoraParams, base: str) -> dict[str, Any]:
    """What a LoRA model's config.json records (:data:`CONFIG_KEY`): the base model's name or
    path as params gave it, the adapter's settings, the modules adapted."""
    config = model.peft_config["default"]
    return {
        "base_model": base,
        "rank": lora.rank,
        "alpha": lora.alpha,
        "dropout": lora.dropout,
        "target_modules": sorted(config.target_modules),
        "adapter_saved": not lora.merge,  # in models/adapter; models/best is merged always
    }


def merged_copy(model: Any) -> Any:
    """A copy of a LoRA model with the adapters merged into the base weights (``W + alpha /
    rank * B A``): a plain transformers model, same outputs up to float rounding. The
    model itself is unchanged (it may train on)."""
    twin = copy.deepcopy(model)
    return twin.merge_and_unload()


def save_adapter(model: Any, path: str | Path) -> None:
    """The adapter alone (``adapter_config.json``, ``adapter_model.safetensors``) into ``path``
    (an existing directory), without the README peft writes (the model card is nlpflow's)."""
    model.save_pretrained(str(path))
    (Path(path) / "README.md").unlink(missing_ok=True)


def load_adapter(base: Any, adapter_dir: str | Path) -> Any:
    """``base`` (a loaded transformers model) with the adapter of ``adapter_dir`` merged in,
    in eval mode. Raises UserError when the adapter does not fit the base."""
    from peft import PeftModel

    try:
        with _quiet_peft():
            model = PeftModel.from_pretrained(base, str(adapter_dir))
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise UserError(
            f"cannot load the LoRA adapter in {adapter_dir} onto its base model: "
            f"{str(err).splitlines()[0]}"
        ) from None
    merged = model.merge_and_unload()
    merged.eval()
    return merged
