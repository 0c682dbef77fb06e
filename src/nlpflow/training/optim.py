"""The optimizer: AdamW with weight decay on weight matrices only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decayed weights, and biases plus LayerNorm weights without decay.

    Decaying a bias or a LayerNorm gain pulls it towards 0, which only limits what the
    layer can represent; the regulariser is meant for the weight matrices. LayerNorm is
    found by module type, not by name, so models that call it ``ln_1`` or ``norm`` work too.
    """
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith(
            ("LayerNorm", "RMSNorm")
        )
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue  # tied weights appear once
            seen.add(id(param))
            (no_decay if is_norm or name == "bias" else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    import torch

    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
