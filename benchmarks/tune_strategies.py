"""Search strategies at equal compute: TPE with median pruning against random search and
against the grid, on the built-in anagram task, over several sampler seeds.

    .venv/bin/python benchmarks/tune_strategies.py [--seeds 3] [--size 1200] [--epochs 6]

Every strategy is a real `nlpflow tune` study in one temporary copy of this project, so every
trial is a DVC experiment of the real pipeline. The search space is the same for all:
``train.lr`` (log scale, 1e-5 to 1e-1: four decades, of which this task learns in well
under one; grid 3e-4, 2e-3, 1e-2) and ``train.warmup_ratio`` (0 to 0.3; grid 0, 0.2). Equal compute means the same number of training epochs: the grid's
6 cells, each up to ``--epochs`` (early stopping can end a cell sooner), and random search
and TPE then get exactly the epochs the grid spent: they start trials while one more could
still fit (``nlpflow tune --epoch-budget``), so a pruned trial, which stops early, leaves
room for another. The grid is deterministic and runs once; random search and
TPE run once per sampler seed.

Prints, for each strategy, the best validation f1_macro reached and the training epochs
spent (mean and SD over seeds), and the ratios TPE/random and TPE/grid of both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "src"]
SPACE = {
    "train.lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True,
                 "grid": [3e-4, 2e-3, 1e-2]},
    "train.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.3, "grid": [0.0, 0.2]},
}  # fmt: skip
GRID_CELLS = 3 * 2


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out.pop("PYTHONPATH", None)
    return out


def sh(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def make_project(parent: Path, size: int, epochs: int) -> Path:
    repo = parent / "project"
    repo.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["anagram"]["size"] = size
    params["train"]["epochs"] = epochs
    # Evaluation and error analysis at their cheapest: the objective is validation F1,
    # which neither the bootstrap nor the behavioural tests change.
    params["evaluate"]["bootstrap_resamples"] = 0
    params["evaluate"]["baselines"] = ["majority"]
    params["error_analysis"]["behaviour"].update(
        {"invariance": [], "directional": [], "templates": "", "max_examples": 5}
    )
    params["tune"].update(
        {
            "space": SPACE,
            "pruner": {"kind": "median", "metric": "f1_macro", "startup_trials": 2,
                       "warmup_epochs": 1},
        }
    )  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "config", "user.email", "bench@example.com"], repo)
    sh(["git", "config", "user.name", "benchmark"], repo)
    sh(["dvc", "init", "-q"], repo)
    sh(["dvc", "config", "core.analytics", "false"], repo)
    sh(["dvc", "repro", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "benchmark baseline"], repo)
    return repo


def study(repo: Path, name: str, sampler: str, pruner: str, seed: int, budget: int,
          jobs: int) -> dict[str, Any]:  # fmt: skip
    started = time.monotonic()
    sh(["nlpflow", "tune", "--study", name, "--sampler", sampler, "--pruner", pruner,
        "--sampler-seed", str(seed), "--n-trials", "1000", "--epoch-budget", str(budget),
        "--jobs", str(jobs), "--report", f"reports/bench/{name}.md"], repo)  # fmt: skip
    summary = json.loads((repo / f"reports/bench/{name}.json").read_text())
    best = summary["best"][0]["values"][0] if summary["best"] else float("nan")
    result = {
        "best": best,
        "epochs": summary["epochs_total"],
        "to_best": epochs_to_best(summary["trials"], best),
        "trials": sum(summary["counts"].values()),
        "pruned": summary["counts"].get("pruned", 0),
        "minutes": (time.monotonic() - started) / 60,
    }
    print(
        f"  {name:<14} best val f1 {best:.4f}  epochs {result['epochs']:>3} (best after "
        f"{result['to_best']:>3})  trials {result['trials']:>2} ({result['pruned']} pruned)  "
        f"{result['minutes']:.1f} min",
        flush=True,
    )
    return result


def epochs_to_best(trials: list[dict[str, Any]], best: float) -> int:
    """Training epochs spent until a complete trial first reached ``best`` (trials in order)."""
    spent = 0
    for t in sorted(trials, key=lambda t: t["number"]):
        spent += int(t["epochs_run"] or 0)
        if t["state"] == "complete" and t["values"] and t["values"][0] >= best:
            return spent
    return spent


def mean_sd(values: list[float], digits: int = 4) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="sampler seeds for random and TPE")
    ap.add_argument("--size", type=int, default=1200, help="anagram examples (all splits)")
    ap.add_argument("--epochs", type=int, default=6, help="train.epochs of every trial")
    ap.add_argument("--jobs", type=int, default=1, help="trials at a time")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = ap.parse_args()

    budget = GRID_CELLS * args.epochs
    tmp = Path(tempfile.mkdtemp(prefix="nlpflow-bench-"))
    try:
        t0 = time.monotonic()
        repo = make_project(tmp, args.size, args.epochs)
        print(
            f"project ready in {time.monotonic() - t0:.0f}s ({repo}); the grid: "
            f"{GRID_CELLS} cells x up to {args.epochs} epochs",
            flush=True,
        )
        grid = study(repo, "grid", "grid", "none", 0, budget, args.jobs)
        budget = int(grid["epochs"])  # equal compute: what the grid actually spent
        print(f"  the others get the grid's {budget} training epochs each", flush=True)
        results: dict[str, list[dict[str, Any]]] = {"random": [], "tpe": []}
        for seed in range(args.seeds):
            results["random"].append(
                study(repo, f"random-s{seed}", "random", "none", seed, budget, args.jobs)
            )
            results["tpe"].append(
                study(repo, f"tpe-s{seed}", "tpe", "median", seed, budget, args.jobs)
            )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    def col(name: str, key: str) -> list[float]:
        return [float(r[key]) for r in results[name]]

    def mean(name: str, key: str) -> float:
        return statistics.mean(col(name, key))

    print(f"\nequal compute: {budget} training epochs per search; {args.seeds} sampler seeds")
    header = ["strategy", "best val f1_macro", "epochs spent", "epochs to best", "trials"]
    print(f"{header[0]:<22}{header[1]:<20}{header[2]:<18}{header[3]:<18}{header[4]}")
    print(
        f"{'grid':<22}{grid['best']:<20.4f}{grid['epochs']:<18}{grid['to_best']:<18}"
        f"{grid['trials']}"
    )
    for label, key in (("random", "random"), ("tpe + median pruning", "tpe")):
        print(
            f"{label:<22}{mean_sd(col(key, 'best')):<20}{mean_sd(col(key, 'epochs'), 1):<18}"
            f"{mean_sd(col(key, 'to_best'), 1):<18}{mean(key, 'trials'):.1f}"
        )
    for what, key in (("best val f1", "best"), ("epochs spent", "epochs"),
                      ("epochs to best", "to_best")):  # fmt: skip
        print(
            f"ratio {what}, TPE/random: {mean('tpe', key) / mean('random', key):.3f}   "
            f"TPE/grid: {mean('tpe', key) / float(grid[key]):.3f}"
        )
    pairs = list(zip(results["tpe"], results["random"], strict=True))
    wins = sum(t["best"] > r["best"] for t, r in pairs)
    ties = sum(t["best"] == r["best"] for t, r in pairs)
    print(
        f"TPE reached a better value than random with the same sampler seed in {wins} of "
        f"{args.seeds} ({ties} ties); with this few seeds, a ratio near 1 is no difference"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
