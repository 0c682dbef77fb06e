"""GPU check: every GPU path of nlpflow, PASS or FAIL each, in under 5 minutes.

    PYTHONPATH=src python3 benchmarks/gpu_check.py        # where python3 has torch, transformers
    .venv/bin/python benchmarks/gpu_check.py              # in the project's environment

A bare machine needs nothing but the repository and a Python with torch (CUDA build) and
transformers: the check imports nlpflow's training modules straight from ``src/`` and builds
its models from configs (no download, no data files, no ``datasets``). Without them:
``python3 -m venv .venv && .venv/bin/pip install -e .`` (the CUDA build of torch comes from
PyPI). Checks, each printed as ``PASS``, ``FAIL`` (with why) or ``SKIP`` (with why):

1. ``bf16 training``: steps of a small BERT under ``train.precision: bf16`` as the loop runs
   them (nlpflow's ``resolve_precision``, ``autocast``, fused AdamW); the loss must stay
   finite and fall on a repeated batch.
2. ``fp16 training``: the same with fp16 and the loop's ``GradScaler``.
3. ``probe OOM search``: the probe's own search (``search_batch_size`` over ``StepRunner``
   with ``catch_oom``) on a model made to run out of memory: eager attention over 4,096
   tokens, so each example holds gigabytes of attention scores. It must see real CUDA
   out-of-memory errors, try doubling sizes then bisect, end at a batch that fits (run again
   after the search), and leave no memory allocated.
4. ``torch.compile``: ``torch.compile(model, dynamic=True)`` (``train.compile: true``) in
   training steps under bf16; the loss must match eager's within bf16 tolerance.
5. ``two processes (NCCL)``: two processes on two GPUs, ``init_process_group("nccl")`` and an
   all-reduce, as ``train.processes: 2`` runs; SKIP with fewer than two GPUs.

On a machine without CUDA every check prints SKIP and the exit status is 0; otherwise it is
1 when any check failed.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # nlpflow from the repository, installed or not

CHECKS = [
    "bf16 training",
    "fp16 training",
    "probe OOM search",
    "torch.compile",
    "two processes (NCCL)",
]


class Skip(Exception):
    """A check that does not apply here (said why)."""


def small_bert(vocab: int = 1000, layers: int = 2, seq: int = 64, **config: Any) -> Any:
    """A BERT classifier built from a config (no download)."""
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=vocab, hidden_size=128, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=seq, **config,
    )  # fmt: skip
    cfg.num_labels = 2
    return BertForSequenceClassification(cfg)


def train_steps(precision: str, steps: int = 30, compile_model: bool = False) -> list[float]:
    """Losses of ``steps`` training steps on one repeated batch, as the loop runs them."""
    import torch

    from nlpflow.training.device import autocast, resolve_precision
    from nlpflow.training.optim import build_optimizer

    torch.manual_seed(0)
    device = torch.device("cuda")
    model = small_bert().to(device)
    dtype, _ = resolve_precision(precision, device)
    forward = torch.compile(model, dynamic=True) if compile_model else model
    optimizer = build_optimizer(model, 1e-3, 0.01)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (16, 64), generator=gen).to(device)
    labels = (torch.arange(16) % 2).to(device)
    losses = []
    for _ in range(steps):
        with autocast(device, dtype):
            logits = forward(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
    return losses


def check_training(precision: str) -> str:
    losses = train_steps(precision)
    if not all(math.isfinite(v) for v in losses):
        raise AssertionError(f"non-finite loss: {losses}")
    if not losses[-1] < 0.5 * losses[0]:
        raise AssertionError(f"loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}")
    return f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {len(losses)} steps"


def check_probe_oom() -> str:
    import torch

    from nlpflow.training.memory import release_memory
    from nlpflow.training.probe import Candidate, StepRunner, catch_oom, search_batch_size

    device = torch.device("cuda")
    seq = 4096
    # Eager attention keeps (B, heads, T, T) scores, probabilities and dropout masks per
    # layer: about 3 GB per example at T = 4096, so the GPU runs out within a few dozen.
    model = small_bert(
        layers=4, seq=seq, attn_implementation="eager", attention_probs_dropout_prob=0.1
    ).to(device)
    runner = StepRunner(model, device, seq, 2, with_token_type_ids=False, seed=0)
    release_memory(device)
    baseline = torch.cuda.memory_allocated(device)
    cands: list[Candidate] = []
    run = catch_oom(lambda n: runner.run(n, None), device)

    def try_batch(n: int) -> bool:
        cand = run(n)
        cands.append(cand)
        return cand.fits

    started = time.perf_counter()
    best, tried = search_batch_size(try_batch, 4096, 20)
    took = time.perf_counter() - started
    failed = [c.batch_size for c in cands if not c.fits]
    if not failed:
        raise AssertionError(f"no out-of-memory up to batch 4096 (tried {tried}): not a real test")
    first_fail = tried.index(failed[0])
    doubling = tried[: first_fail + 1]
    if doubling != [2**i for i in range(len(doubling))]:
        raise AssertionError(f"the search did not double from 1: {tried}")
    if not all(best < n for n in failed) or best < 1 or best + 1 not in failed:
        raise AssertionError(f"bisection did not end next to a failure: best {best}, {tried}")
    again = runner.run(best, None)  # the chosen batch really fits after the search
    runner.forget_steps()
    release_memory(device)
    left = (torch.cuda.memory_allocated(device) - baseline) / 2**20
    if not again.fits:
        raise AssertionError(f"batch {best} chosen but does not fit on a second run")
    if left > 64:
        raise AssertionError(f"{left:.0f} MiB still allocated after the search")
    return (
        f"tried {tried}; out of memory at {failed}; largest fit {best} "
        f"(peak {again.peak_memory_mb or 0:.0f} MiB), {took:.0f} s, {left:.1f} MiB left over"
    )


def check_compile() -> str:
    eager = train_steps("bf16", steps=5)
    compiled = train_steps("bf16", steps=5, compile_model=True)
    diff = max(abs(a - b) for a, b in zip(eager, compiled, strict=True))
    if diff > 0.05:
        raise AssertionError(f"compiled losses {compiled} differ from eager {eager}")
    return f"5 bf16 steps, largest loss difference from eager {diff:.4f}"


def _nccl_worker(rank: int, world: int, port: int, out: Any) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    try:
        value = torch.full((4,), float(rank + 1), device="cuda")
        dist.all_reduce(value)
        out.put((rank, value.tolist()))
    finally:
        dist.destroy_process_group()


def check_nccl() -> str:
    import socket

    import torch
    import torch.multiprocessing as mp

    if torch.cuda.device_count() < 2:
        raise Skip(f"{torch.cuda.device_count()} GPU here; two processes need two")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_nccl_worker, args=(2, port, queue), nprocs=2, start_method="spawn")
    results = dict(queue.get(timeout=60) for _ in range(2))
    if any(v != [3.0] * 4 for v in results.values()):
        raise AssertionError(f"all-reduce of 1 and 2 gave {results}")
    return "all-reduce across 2 GPUs gave 3.0 on both"


def main() -> int:
    started = time.perf_counter()
    try:
        import torch
    except ImportError:
        for name in CHECKS:
            print(f"SKIP  {name}: torch is not installed")
        return 0
    runs: dict[str, Callable[[], str]] = {
        "bf16 training": lambda: check_training("bf16"),
        "fp16 training": lambda: check_training("fp16"),
        "probe OOM search": check_probe_oom,
        "torch.compile": check_compile,
        "two processes (NCCL)": check_nccl,
    }
    if not torch.cuda.is_available():
        for name in CHECKS:
            print(f"SKIP  {name}: no CUDA device here (torch {torch.__version__})")
        return 0
    print(
        f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}, torch {torch.__version__}"
    )
    failed = 0
    for name in CHECKS:
        begin = time.perf_counter()
        try:
            detail = runs[name]()
            status = "PASS"
        except Skip as why:
            status, detail = "SKIP", str(why)
        except Exception as exc:  # a check's failure is reported, the others still run
            status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
            failed += 1
        print(f"{status}  {name}: {detail} ({time.perf_counter() - begin:.1f} s)", flush=True)
    print(f"{failed} failed; {time.perf_counter() - started:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
