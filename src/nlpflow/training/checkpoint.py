"""Checkpoints: written atomically every N steps and at each epoch end, resumed only when
made by the same run.

Layout under ``checkpoints/``::

    step-N/   model.safetensors, state.pt (optimizer, scheduler, RNG states of every process,
              data-order position, history, early-stopping state), meta.json (step, epoch,
              the params that made it)
    best/     model.safetensors, meta.json (the best evaluation so far)

A checkpoint carries a hash of everything that shapes the run (seed, model, train, the
probe's batch split, the tokenized train data, the number of processes and CPU threads). A
checkpoint with another hash is never resumed: the keys that differ are printed and the stale
checkpoints removed. ``state.pt`` holds only tensors and plain values: it loads with
``torch.load(..., weights_only=True)``, so a checkpoint can run no code.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nlpflow.errors import UserError
from nlpflow.io import atomic_dir, read_json

if TYPE_CHECKING:
    import torch

    from nlpflow.contracts import TrainInputs
    from nlpflow.training.distributed import Distributed
    from nlpflow.training.probe import BatchPlan

STEP_DIR = re.compile(r"^step-(\d+)$")
BEST = "best"
WEIGHTS = "model.safetensors"
STATE = "state.pt"
META = "meta.json"


# --------------------------------------------------------------------------- run identity


# Train params that change how a run is recorded, not what it computes: a checkpoint made
# with other values of these resumes.
BOOKKEEPING_KEYS = (
    "checkpoint_every_steps",
    "keep_checkpoints",
    "tensorboard",
    "processes",
    "threads",
)


def run_sections(
    params: TrainInputs,
    plan: BatchPlan,
    data_fingerprint: str,
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything that changes the result of a run, by params section: the train stage's
    inputs (:class:`~nlpflow.contracts.TrainInputs`, the declaration dvc.yaml lists) but
    their bookkeeping keys, the probe's batch split and the train split's fingerprint.

    ``runtime``: the processes and CPU threads the run computes with (float rounding
    depends on both); ``train.processes`` and ``train.threads`` themselves are left out.
    """
    sections: dict[str, Any] = params.as_dict()
    for key in BOOKKEEPING_KEYS:
        del sections["train"][key]
    sections["probe"] = {
        "batch_size": plan.batch_size,
        "accumulation_steps": plan.accumulation_steps,
        "precision": plan.precision,
    }
    sections["data"] = {"train_fingerprint": data_fingerprint}
    if runtime is not None:
        sections["runtime"] = runtime
    return sections


def sections_hash(sections: dict[str, Any]) -> str:
    blob = json.dumps(sections, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def describe_difference(old: dict[str, Any], new: dict[str, Any], limit: int = 5) -> str:
    """``"train.lr 0.002 -> 0.001, seed 1 -> 2"``: the keys whose values differ."""
    a, b = _flatten(old, ""), _flatten(new, "")
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]
    parts = [f"{k} {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in changed[:limit]]
    if len(changed) > limit:
        parts.append(f"and {len(changed) - limit} more")
    return ", ".join(parts) if parts else "unknown difference"


def differing_sections(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


# --------------------------------------------------------------------------- RNG state


def capture_rng(shuffle: torch.Generator) -> dict[str, Any]:
    """Every RNG the loop draws from, as tensors and lists (loadable with weights_only)."""
    import numpy as np
    import torch

    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    assert isinstance(np_keys, np.ndarray)  # legacy=True: the MT19937 tuple, never a dict
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        "numpy": {
            "name": np_name,
            "keys": np_keys.tolist(),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], shuffle: torch.Generator) -> None:
    import numpy as np
    import torch

    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            np.asarray(npy["keys"], dtype=np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["gauss"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    shuffle.set_state(state["shuffle"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --------------------------------------------------------------------------- the directory


class CheckpointDir:
    """Saves, finds and loads the checkpoints of one run (identified by ``sections``)."""

    def __init__(
        self, root: str | Path, sections: dict[str, Any], log: Callable[[str], None], keep: int = 2
    ) -> None:
        self.root = Path(root)
        self.sections = sections
        self.hash = sections_hash(sections)
        self.log = log
        self.keep = keep

    def _step_dirs(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every step checkpoint, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            match = STEP_DIR.match(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def _meta(self, path: Path) -> dict[str, Any] | None:
        try:
            meta = read_json(path / META)
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and "hash" in meta else None

    def remove_leftovers(self) -> None:
        """Temporary directories of a writer that was killed (``.step-3.xyz.tmp``)."""
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path.name.startswith(".") and (".tmp" in path.name or ".old." in path.name):
                shutil.rmtree(path, ignore_errors=True)

    def find_resumable(self) -> Path | None:
        """The newest checkpoint of this run; stale ones (other params) are reported, removed.

        Files that are not checkpoints (the user's own) are left alone.
        """
        self.remove_leftovers()
        candidates = self._step_dirs()
        best = self.root / BEST
        if best.is_dir():
            candidates.append((-1, best))
        stale: list[tuple[Path, dict[str, Any] | None]] = []
        resumable: Path | None = None
        for _, path in candidates:
            meta = self._meta(path)
            if meta is not None and meta["hash"] == self.hash:
                if path.name != BEST:
                    resumable = path  # sorted oldest first: the last match is the newest
            else:
                stale.append((path, meta))
        if stale:
            # Report the newest stale step checkpoint (``best`` only when it is the only one).
            path, meta = ([s for s in stale if s[0].name != BEST] or stale)[-1]
            if meta is None:
                why = "has no readable meta.json"
            else:
                old = meta.get("sections", {})
                sections = ", ".join(differing_sections(old, self.sections))
                why = (
                    f"was made with other params (section {sections} differs: "
                    f"{describe_difference(old, self.sections)})"
                )
            self.log(
                f"checkpoint {path} {why}; not resuming from it: removing "
                f"{len(stale)} stale checkpoint(s) and starting fresh"
            )
            for path, _ in stale:
                shutil.rmtree(path)
        return resumable

    def save(self, step: int, model: torch.nn.Module, state: dict[str, Any], **meta: Any) -> Path:
        """Write ``step-N`` atomically, then drop all but the newest ``keep``."""
        import torch
        from safetensors.torch import save_model

        target = self.root / f"step-{step}"
        with atomic_dir(target) as tmp:
            save_model(model, str(tmp / WEIGHTS))
            torch.save(state, tmp / STATE)
            self._write_meta(tmp, step=step, **meta)
        for _, old in self._step_dirs()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def save_best(self, model: torch.nn.Module, **meta: Any) -> None:
        from safetensors.torch import save_model

        with atomic_dir(self.root / BEST) as tmp:
            save_model(model, str(tmp / WEIGHTS))
            self._write_meta(tmp, **meta)

    def _write_meta(self, directory: Path, **fields: Any) -> None:
        meta = {**fields, "hash": self.hash, "sections": self.sections}
        (directory / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def load(self, path: Path, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """Load weights into ``model`` and return the loop state (weights_only: no code runs)."""
        import torch
        from safetensors.torch import load_model

        try:
            load_model(model, str(path / WEIGHTS), device=str(device))
            state: dict[str, Any] = torch.load(path / STATE, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as err:
            raise UserError(
                f"checkpoint {path} cannot be loaded ({str(err).splitlines()[0]}); "
                f"delete {self.root} to start fresh"
            ) from None
        return state

    def best_meta(self) -> dict[str, Any] | None:
        best = self.root / BEST
        meta = self._meta(best) if best.is_dir() else None
        return meta if meta is not None and meta["hash"] == self.hash else None

    def load_best(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any] | None:
        """Load the best weights into ``model``; their meta, or None when there are none."""
        from safetensors.torch import load_model

        meta = self.best_meta()
        if meta is None:
            return None
        load_model(model, str(self.root / BEST / WEIGHTS), device=str(device))
        return meta


# --------------------------------------------------------------------------- save and resume


class Stateful(Protocol):
    """What a checkpoint saves of a part of the run (optimizer, schedule, early stopping...)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


OPTIONAL = ("scaler",)  # parts of a run that only some runs have (fp16's gradient scaler)


class Checkpointer:
    """Saves and restores everything a resumed run needs, on every process.

    ``parts``: the run's stateful parts by name (``optimizer``, ``scheduler``, ``scaler``,
    ``early_stopping``, ``loop``), saved with the model's weights and the RNG states of every
    process; ``shuffle`` is the data order's generator. Only rank 0 writes;
    ``on_saved(step)`` runs on every process after each checkpoint (tests interrupt there).
    """

    def __init__(
        self,
        directory: CheckpointDir,
        model: torch.nn.Module,
        parts: dict[str, Stateful],
        shuffle: torch.Generator,
        dist: Distributed,
        on_saved: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.model = model
        self.parts = parts
        self.shuffle = shuffle
        self.dist = dist
        self.on_saved = on_saved

    def resume(self, device: torch.device) -> Path | None:
        """Load the newest checkpoint of this run into every part; its path, or None.

        Raises :class:`UserError` when that checkpoint cannot be read.
        """
        dist = self.dist
        path = self.directory.find_resumable() if dist.is_main else None
        dist.barrier()  # stale checkpoints are gone before any process looks
        path = dist.broadcast(path)
        if path is None:
            return None
        saved = self.directory.load(path, self.model, device)
        try:
            for name, part in self.parts.items():
                if name in saved or name not in OPTIONAL:
                    part.load_state_dict(saved[name])
            rng = saved["rng"][dist.rank]
        except (KeyError, IndexError) as err:
            raise UserError(
                f"checkpoint {path} lacks {err} (made by another version of nlpflow?); "
                f"delete {self.directory.root} to start fresh"
            ) from None
        restore_rng(rng, self.shuffle)  # last: building the model drew from the RNGs
        return path

    def save(self, step: int, epoch: float) -> None:
        """Checkpoint ``step-<step>`` (``epoch``: the epochs done, for meta.json)."""
        rng = self.dist.gather(capture_rng(self.shuffle))
        if self.dist.is_main:
            state = {name: part.state_dict() for name, part in self.parts.items()}
            self.directory.save(step, self.model, {**state, "rng": rng}, epoch=epoch)
        self.dist.barrier()
        if self.on_saved is not None:
            self.on_saved(step)

    def save_best(self, **meta: Any) -> None:
        """The weights of the best evaluation so far (``meta``: where, which metric, value)."""
        if self.dist.is_main:
            self.directory.save_best(self.model, **meta)

    def load_best(self, device: torch.device) -> dict[str, Any] | None:
        """The best weights into the model (rank 0); their meta, or None where there are none."""
        return self.directory.load_best(self.model, device) if self.dist.is_main else None
