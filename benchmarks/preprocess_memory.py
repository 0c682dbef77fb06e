"""Preprocess's peak memory and time per task family, as users run the stage, on generated rows.

    .venv/bin/python benchmarks/preprocess_memory.py --task regression --rows 200000 1000000
        [--code DIR]   # another checkout's src/ and stages/ (e.g. main, for "before")

Data: ``--rows`` generated rows written as one CSV, the text AG-News-like (lognormal lengths
of about 40 words from a Zipf-like vocabulary, as ``data_speed.py``'s generator; a row in 50
repeated, so that the duplicate and leakage checks find something), and per family:

- ``sequence``: ``text,label`` (4 classes);
- ``regression``: ``text,score`` (a number, three decimals);
- ``text2text``: ``input,target`` (the target: the input's first words, sorted);
- ``multilabel``: ``text,topics`` (0 to 3 of 8 topics, comma-separated in the cell).

In a temporary directory with a params.yaml pointing at that CSV (splits 0.8/0.1/0.1,
everything else the defaults), ``python -m stages.preprocess`` runs in its own process:
seconds from start to exit, peak memory = its maximum resident set (``wait4``'s
``ru_maxrss``), CPU = user + system seconds. Printed per size, with the growth of the peak
from the first size to the last (issue 14's aim: at most 1.5x for 5x the rows).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from itertools import accumulate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["Business", "Sci/Tech", "Sports", "World"]
MB = 1024 * 1024
FIELDS = {
    "sequence": (["text"], "label"),
    "regression": (["text"], "score"),
    "text2text": (["input"], "target"),
    "multilabel": (["text"], "topics"),
}
TOPICS = ["arts", "business", "health", "politics", "science", "sports", "tech", "travel"]


def generate(path: Path, n: int, task: str, seed: int = 0) -> int:
    """``n`` rows of ``task``'s columns; the CSV's size in bytes."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    vocab = sorted(
        {"".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(30000)}
    )
    cum_weights = list(accumulate(1.0 / (rank + 10) for rank in range(len(vocab))))
    (text_field,), label_field = FIELDS[task]
    earlier: list[str] = []
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([text_field, label_field])
        for i in range(n):
            length = max(5, min(150, int(rng.lognormvariate(3.6, 0.35))))
            words = rng.choices(vocab, cum_weights=cum_weights, k=length)
            words[0] = words[0].capitalize()
            words[length // 2] += ","
            text = " ".join(words) + "."
            if i % 50 == 49 and earlier:  # a repeat: a duplicate, or leakage once split
                text = rng.choice(earlier)
            elif len(earlier) < 1000:
                earlier.append(text)
            if task == "sequence":
                label = rng.choice(LABELS)
            elif task == "regression":
                label = f"{rng.gauss(3.0, 1.0):.3f}"
            elif task == "multilabel":
                label = ",".join(rng.sample(TOPICS, rng.choice([0, 1, 1, 2, 2, 3])))
            else:
                label = " ".join(sorted(w.strip(",.").lower() for w in words[:6]))
            writer.writerow([text, label])
    return path.stat().st_size


def run_child(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds (wall, start to exit), peak resident MB and CPU seconds of one child."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{' '.join(args[:3])} failed:\n{err.decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def write_params(path: Path, csv_path: Path, task: str) -> None:
    import yaml

    text_fields, label_field = FIELDS[task]
    data: dict[str, Any] = {
        "source": str(csv_path),
        "text_fields": text_fields,
        "label_field": label_field,
        "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
    }
    if task != "sequence":
        data["task"] = task
    path.write_text(yaml.safe_dump({"seed": 42, "data": data}), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=sorted(FIELDS), default="regression")
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose code runs")
    args = parser.parse_args()

    code = args.code.resolve()
    env = {**os.environ, "PYTHONPATH": f"{code / 'src'}{os.pathsep}{code}"}
    peaks = []
    print(f"preprocess, {args.task} task, code of {code}; {os.cpu_count()} cores")
    print(f"{'rows':>10} {'CSV MB':>8} {'seconds':>8} {'CPU s':>8} {'peak MB':>8}")
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            size = generate(work / "rows.csv", n, args.task)
            write_params(work / "params.yaml", work / "rows.csv", args.task)
            sec, peak, cpu = run_child([sys.executable, "-m", "stages.preprocess"], work, env)
        peaks.append(peak)
        print(f"{n:>10,} {size / MB:>8.0f} {sec:>8.1f} {cpu:>8.1f} {peak:>8.0f}", flush=True)
    if len(peaks) > 1:
        growth = peaks[-1] / peaks[0]
        rows = args.rows[-1] / args.rows[0]
        print(f"peak growth for {rows:g}x the rows: {growth:.2f}x")


if __name__ == "__main__":
    main()
