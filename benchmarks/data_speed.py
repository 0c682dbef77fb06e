"""Data-stage speed and memory: the preprocess and tokenize stages as users run them, against
the libraries under them, in one run.

    .venv/bin/python benchmarks/data_speed.py [--rows 100000] [--vocab-size 8000]
        [--max-length 128] [--repeats 3] [--keep DIR] [--preprocess-only]
        [--growth-from ROWS]

Data: ``--rows`` generated rows of AG-News-like text (4 classes; lognormal lengths of about 40
words, a long tail to 150; capitalised, with commas and a full stop; no download) written as
one CSV (``text,label``). In a temporary directory with a params.yaml pointing at that CSV
(``data.source``, splits 0.8/0.1/0.1, everything else the defaults), the benchmark runs

1. ``python -m stages.preprocess`` (read, clean, split, leakage checks, data card);
2. ``python -m stages.tokenize`` with the default tokenizer path: a WordPiece tokenizer
   trained on the train split (``--vocab-size``, lowercase; its merges learned from a
   sample of ``tokenizer.train_sample`` texts, default 100,000, its alphabet from all),
   ``max_length`` ``--max-length``; its time includes training the tokenizer;

each in its own process, timed from start to exit (interpreter start and imports included,
as a user sees them), peak memory = the child's maximum resident set (``wait4``'s
``ru_maxrss``), CPU = its user + system seconds (a shared machine stretches wall times;
CPU seconds less so). The floors, each in its own process too, timed around the call only:

- ``pyarrow.csv.read_csv`` of the same CSV;
- the ``tokenizers`` library's ``encode_batch`` (the tokenizer the stage trained and saved, no
  padding, the same truncation, special tokens added) on the train split's texts, in chunks
  of 10,000, with all cores (``TOKENIZERS_PARALLELISM=true``); and, for reference,
  ``encode_batch_fast`` (no character offsets), which the stage uses for sequence inputs.

For reference, without an aim, a process floor timed as the stages are (start to exit): a
process that imports the libraries preprocess writes with (datasets, polars, pyarrow,
matplotlib), reads the CSV with pyarrow and writes its rows as one Arrow file. It shows how
much of the 10x the call-only read floor leaves to everything a stage must also do.

The five runs are interleaved ``--repeats`` times (the read floor three times a round): the
fastest time of each counts (the machine may be shared), and the largest peak. The read
floor's spread is printed too: the same read takes about 0.2 to 1 s here (steady user CPU,
varying kernel time faulting in fresh memory), and preprocess against the median read.

Aims (issue 14): tokenize at least 0.8x the speed of the raw encode; preprocess within 10x
of the raw read; peak memory of each stage under 1 GB at 1,000,000 rows, and its peak at
5,000,000 rows at most 1.5x its peak at 1,000,000. The memory aims hold at those sizes only:
with other ``--rows`` the peak is printed as measured and the aim says which size it needs.

``--task token``: ``--rows`` CoNLL-2003-like sentences instead (:func:`generate_conll`:
word, POS, chunk and IOB2 entity tag over PER/ORG/LOC/MISC, ``-DOCSTART-`` lines, about 14
words a sentence), ``data.text_fields: [tokens]``, ``label_field: tags``; the floors are
``pyarrow.csv.read_csv`` of the space-separated file (every line, blank ones skipped) and
``encode_batch(words, is_pretokenized=True)`` of train's word lists. ``--growth-from`` and
``--preprocess-only`` apply to it too.

``--format jsonl`` / ``parquet``: the same rows as JSON Lines (one ``json.dumps`` object a
line) or Parquet (100,000 rows a row group); preprocess only (tokenize reads the processed
splits, whatever the format), against ``pyarrow.json.read_json`` / ``pyarrow.parquet
.read_table`` of the file.

``--task choice``: ``--rows`` SWAG-like multiple-choice rows (:func:`generate_choice_csv`: a
context of about 14 words, four endings of about 10, the label an index), ``data.task:
choice``; preprocess only, against ``pyarrow.csv.read_csv`` of the file.

``--growth-from ROWS`` measures that growth in one run: only the two stages, once each, at
``ROWS`` rows and at ``--rows`` rows (the smaller data generated alike, in ``rows-ROWS/``),
their peaks and the ratio of the larger to the smaller (``--growth-from 1000000 --rows
5000000`` for the aim). ``--keep DIR`` reuses a CSV it generated there for the same
``--rows`` (the generator is deterministic), which saves minutes at millions of rows.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["Business", "Sci/Tech", "Sports", "World"]
MB = 1024 * 1024

# pyarrow's reader of the file's format (argv[2]: csv, jsonl or parquet), timed around the call
READ_FLOOR = """
import json, sys, time
import pyarrow.csv, pyarrow.json, pyarrow.parquet
read = {"jsonl": pyarrow.json.read_json, "parquet": pyarrow.parquet.read_table}.get(
    sys.argv[2] if len(sys.argv) > 2 else "csv", pyarrow.csv.read_csv
)
start = time.perf_counter()
table = read(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "rows": table.num_rows}))
"""

# argv: the split, the tokenizer, max_length, the method (encode_batch or _fast) and, for a
# token task, "tokens": its word lists, encoded as pre-tokenized input
ENCODE_FLOOR = """
import json, sys, time
from datasets import load_from_disk
from tokenizers import Tokenizer
words = len(sys.argv) > 5
texts = load_from_disk(sys.argv[1])[sys.argv[5] if words else "text"]
tok = Tokenizer.from_file(sys.argv[2])
tok.no_padding()
tok.enable_truncation(int(sys.argv[3]))
encode = getattr(tok, sys.argv[4])
start = time.perf_counter()
tokens = 0
for i in range(0, len(texts), 10000):
    tokens += sum(len(e.ids) for e in encode(texts[i : i + 10000], is_pretokenized=words))
print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(texts), "tokens": tokens}))
"""


def news_rows(n: int, seed: int = 0) -> Iterator[tuple[str, str]]:
    """``n`` rows ``(text, label)`` of AG-News-like text: a Zipf-like vocabulary, a few topic
    words per class."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    # sorted: a set's order changes with Python's hash seed, and the rows must not
    vocab = sorted(
        {"".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(30000)}
    )
    cum_weights = list(accumulate(1.0 / (rank + 10) for rank in range(len(vocab))))
    topics = {label: rng.sample(vocab[200:5000], 300) for label in LABELS}
    for _ in range(n):
        label = rng.choice(LABELS)
        length = max(5, min(150, int(rng.lognormvariate(3.6, 0.35))))
        words = rng.choices(vocab, cum_weights=cum_weights, k=length)
        for j in rng.sample(range(length), k=max(1, length // 8)):
            words[j] = rng.choice(topics[label])
        words[0] = words[0].capitalize()
        words[length // 2] += ","
        yield " ".join(words) + ".", label


def generate_csv(path: Path, n: int, seed: int = 0) -> int:
    """:func:`news_rows` as a CSV file (``text,label``, as the ``csv`` module writes it)."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(news_rows(n, seed))
    return path.stat().st_size


def generate_parquet(path: Path, n: int, seed: int = 0) -> int:
    """:func:`news_rows` as a Parquet file (pyarrow's defaults, 100,000 rows a row group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = news_rows(n, seed)
    schema = pa.schema([("text", pa.string()), ("label", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        while batch := [row for _, row in zip(range(100_000), rows, strict=False)]:
            texts, labels = zip(*batch, strict=True)
            writer.write_table(pa.table({"text": texts, "label": labels}, schema=schema))
    return path.stat().st_size


def generate_jsonl(path: Path, n: int, seed: int = 0) -> int:
    """:func:`news_rows` as JSON Lines (one ``json.dumps`` object a line)."""
    with open(path, "w", encoding="utf-8") as fh:
        for text, label in news_rows(n, seed):
            fh.write(json.dumps({"text": text, "label": label}) + "\n")
    return path.stat().st_size


def prepare_csv(path: Path, n: int, generate: Any = None) -> int:
    """``generate`` (:func:`generate_csv` by default) into ``path``, or the file already
    there when a stamp beside it says it holds ``n`` rows of this generator (``--keep``);
    its size in bytes."""
    generate = generate or generate_csv
    stamp = path.with_suffix(".json")
    made_by = {
        "rows": n,
        "generator": hashlib.sha256(inspect.getsource(generate).encode()).hexdigest()[:16],
    }
    if path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == made_by:
        return path.stat().st_size
    stamp.unlink(missing_ok=True)
    size = int(generate(path, n))
    stamp.write_text(json.dumps(made_by), encoding="utf-8")
    return size


def run_child(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str, float]:
    """Seconds (wall, start to exit), peak resident MB, stdout and CPU seconds (user +
    system, all threads) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # read the pipes first (a full pipe would block the child), then reap it with wait4
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(args[:4])} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, out.decode(), usage.ru_utime + usage.ru_stime


def write_params(path: Path, csv_path: Path, vocab_size: int, max_length: int) -> None:
    import yaml

    params: dict[str, Any] = {
        "seed": 42,
        "data": {
            "source": str(csv_path),
            "text_fields": ["text"],
            "label_field": "label",
            "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
        },
        "tokenizer": {
            "kind": "wordpiece",
            "vocab_size": vocab_size,
            "max_length": max_length,
            "lowercase": True,
        },
    }
    path.write_text(yaml.safe_dump(params), encoding="utf-8")


# For reference (no aim): the least a preprocess process could do, timed as the stage is
# (start to exit): start, import the libraries the stage writes with, read the CSV, write
# its rows as one Arrow file. The call-only read floor leaves out what every stage pays.
PROCESS_FLOOR = """
import sys
import datasets, matplotlib, polars, pyarrow.compute, pyarrow.feather
import pyarrow.csv, pyarrow.json, pyarrow.parquet
matplotlib.use("Agg")
import matplotlib.pyplot
read = {"jsonl": pyarrow.json.read_json, "parquet": pyarrow.parquet.read_table}.get(
    sys.argv[1].rsplit(".", 1)[-1], pyarrow.csv.read_csv
)
pyarrow.feather.write_feather(read(sys.argv[1]), sys.argv[2], compression="uncompressed")
"""
FORMATS = {  # --format: the file's suffix and its generator
    "csv": (".csv", "generate_csv"),
    "jsonl": (".jsonl", "generate_jsonl"),
    "parquet": (".parquet", "generate_parquet"),
}
READS_PER_ROUND = 3  # the read floor is short: several reads a round show its spread


def read_floor(
    command: list[str], cwd: Path, env: dict[str, str], reads: list[float]
) -> tuple[float, float, float]:
    """The read floor ``READS_PER_ROUND`` times: its fastest seconds, largest peak and least
    CPU seconds of the round; every time appended to ``reads``."""
    out = []
    for _ in range(READS_PER_ROUND):
        _, peak, printed, cpu = run_child(command, cwd, env)
        out.append((json.loads(printed)["seconds"], peak, cpu))
        reads.append(out[-1][0])
    return min(o[0] for o in out), max(o[1] for o in out), min(o[2] for o in out)


def print_read_spread(reads: list[float], pre_s: float) -> None:
    """The read floor's spread and preprocess against its median: on these machines the same
    read takes from about 0.2 to 1 s (its user CPU time is steady; the kernel's time to
    fault in fresh memory is not), and the aim is judged on the fastest."""
    ordered = sorted(reads)
    median = ordered[len(ordered) // 2]
    print(
        f"  (the read floor over {len(reads)} reads: fastest {ordered[0]:.2f} s, median "
        f"{median:.2f} s, slowest {ordered[-1]:.2f} s; preprocess / median read: "
        f"{pre_s / median:.1f}x)"
    )


PROCESS_NAME = "imports+read+write (process)"
FLOOR_NAMES = {"csv": "read_csv", "jsonl": "read_json", "parquet": "read_table"}


def print_process_floor(proc_s: float, read_s: float, pre_s: float) -> None:
    """The process floor (:data:`PROCESS_FLOOR`) against the read floor and the stage: what
    the read floor leaves out, and the stage against a process timed as it is (no aim)."""
    print(
        f"  (for reference: a process that only imports the stage's libraries, reads the file "
        f"and writes it as Arrow takes {proc_s:.2f} s, {proc_s / read_s:.1f}x the read; "
        f"preprocess / that: {pre_s / proc_s:.1f}x)"
    )


def aim(ok: bool) -> str:
    return "ok" if ok else "BELOW AIM"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="generated CSV rows")
    parser.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary")
    parser.add_argument("--max-length", type=int, default=128, help="truncation, in tokens")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the fastest counts")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the outputs")
    parser.add_argument(
        "--preprocess-only",
        action="store_true",
        help="measure preprocess and the read floor only (minutes less at large --rows)",
    )
    parser.add_argument(
        "--growth-from",
        type=int,
        default=0,
        metavar="ROWS",
        help="measure only the stages' peak memory at ROWS and at --rows rows, and the growth "
        "(the aim: --growth-from 1000000 --rows 5000000)",
    )
    parser.add_argument(
        "--task",
        choices=["sequence", "token", "choice"],
        default="sequence",
        help="sequence: AG-News-like CSV rows (the default); token: CoNLL-2003-like sentences "
        "(--rows counts sentences); choice: SWAG-like multiple-choice rows (preprocess only)",
    )
    parser.add_argument(
        "--format",
        choices=["csv", "jsonl", "parquet"],
        default="csv",
        help="the sequence task's file: csv (the default), jsonl (JSON Lines, json.dumps a "
        "row) or parquet; the last two preprocess only, against pyarrow's reader of the format",
    )
    args = parser.parse_args()

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true", "PYTHONPATH": str(ROOT / "src")}
    env["PYTHONPATH"] += os.pathsep + str(ROOT)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.growth_from:
            growth(work, args, env)
            return
        if args.task == "token":
            token_main(args, env, work)
            return
        if args.task == "choice":
            choice_main(args, env, work)
            return
        suffix, generator = FORMATS[args.format]
        csv_path = work / f"news{suffix}"
        size = prepare_csv(csv_path, args.rows, globals()[generator])
        write_params(work / "params.yaml", csv_path, args.vocab_size, args.max_length)
        args.preprocess_only |= args.format != "csv"  # the format is preprocess's alone
        print(
            f"data: {args.rows:,} generated AG-News-like rows, {size / MB:.0f} MB {args.format.upper()}; "
            f"tokenizer: WordPiece trained on train (vocab {args.vocab_size}; merges from "
            "at most 100,000 texts, tokenizer.train_sample's default), max_length "
            f"{args.max_length}; {os.cpu_count()} cores"
        )
        enc_args = [
            py,
            "-c",
            ENCODE_FLOOR,
            str(work / "data" / "processed" / "train"),
            str(work / "models" / "tokenizer" / "tokenizer.json"),
            str(args.max_length),
        ]
        best: dict[str, list[float]] = {}
        train_rows = 0
        reads: list[float] = []
        for _ in range(args.repeats):  # interleaved: a busy moment slows one round, not one path
            runs = {}
            read = [py, "-c", READ_FLOOR, str(csv_path), args.format]
            runs["read"] = read_floor(read, work, env, reads)
            sec, peak, _, cpu = run_child([py, "-m", "stages.preprocess"], work, env)
            runs["pre"] = (sec, peak, cpu)
            floor_file = work / "process-floor.arrow"
            sec, peak, _, cpu = run_child(
                [py, "-c", PROCESS_FLOOR, str(csv_path), str(floor_file)], work, env
            )
            floor_file.unlink()
            runs["proc"] = (sec, peak, cpu)
            if args.preprocess_only:
                for key, (sec, mb, cpu) in runs.items():
                    old = best.get(key, [float("inf"), 0.0, float("inf")])
                    best[key] = [min(old[0], sec), max(old[1], mb), min(old[2], cpu)]
                continue
            sec, peak, _, cpu = run_child([py, "-m", "stages.tokenize"], work, env)
            runs["tok"] = (sec, peak, cpu)
            for key, method in (("enc", "encode_batch"), ("fast", "encode_batch_fast")):
                _, peak, out, cpu = run_child([*enc_args, method], work, env)
                encoded = json.loads(out)
                runs[key], train_rows = (encoded["seconds"], peak, cpu), encoded["rows"]
            for key, (sec, mb, cpu) in runs.items():
                old = best.get(key, [float("inf"), 0.0, float("inf")])
                best[key] = [min(old[0], sec), max(old[1], mb), min(old[2], cpu)]
    (read_s, read_mb, read_cpu), (pre_s, pre_mb, pre_cpu) = best["read"], best["pre"]
    if args.preprocess_only:
        print(f"\n{'':28} {'seconds':>8} {'peak MB':>8} {'rows/s':>10} {'CPU s':>8}")
        for name, (sec, mb, cpu) in (
            (f"pyarrow {FLOOR_NAMES[args.format]} (floor)", best["read"]),
            (PROCESS_NAME, best["proc"]),
            ("preprocess stage", best["pre"]),
        ):
            print(f"{name:28} {sec:>8.2f} {mb:>8.0f} {args.rows / sec:>10,.0f} {cpu:>8.1f}")
        pre_ratio = pre_s / read_s
        print(f"\npreprocess / raw read time:  {pre_ratio:.1f}x (aim <= 10) {aim(pre_ratio <= 10)}")
        print_read_spread(reads, pre_s)
        print_process_floor(best["proc"][0], read_s, pre_s)
        verdict = aim(pre_mb < 1024) if args.rows == 1_000_000 else "aim needs --rows 1000000"
        print(
            f"preprocess peak memory: {pre_mb:,.0f} MB at {args.rows:,} rows (aim < 1024 MB) {verdict}"
        )
        return
    (tok_s, tok_mb, tok_cpu), (enc_s, enc_mb, enc_cpu) = best["tok"], best["enc"]
    fast_s, fast_cpu = best["fast"][0], best["fast"][2]

    print(f"\n{'':28} {'seconds':>8} {'peak MB':>8} {'rows/s':>10} {'CPU s':>8}")
    print(
        f"{'pyarrow read_csv (floor)':28} {read_s:>8.2f} {read_mb:>8.0f} "
        f"{args.rows / read_s:>10,.0f} {read_cpu:>8.1f}"
    )
    print(
        f"{'preprocess stage':28} {pre_s:>8.2f} {pre_mb:>8.0f} {args.rows / pre_s:>10,.0f} "
        f"{pre_cpu:>8.1f}"
    )
    proc_s, proc_mb, proc_cpu = best["proc"]
    print(
        f"{PROCESS_NAME:28} {proc_s:>8.2f} {proc_mb:>8.0f} {args.rows / proc_s:>10,.0f} "
        f"{proc_cpu:>8.1f}"
    )
    print(
        f"{'encode_batch, train (floor)':28} {enc_s:>8.2f} {enc_mb:>8.0f} "
        f"{train_rows / enc_s:>10,.0f} {enc_cpu:>8.1f}"
    )
    print(
        f"{'encode_batch_fast, train':28} {fast_s:>8.2f} {'':>8} "
        f"{train_rows / fast_s:>10,.0f} {fast_cpu:>8.1f}"
    )
    print(
        f"{'tokenize stage':28} {tok_s:>8.2f} {tok_mb:>8.0f} {args.rows / tok_s:>10,.0f} "
        f"{tok_cpu:>8.1f}"
    )
    print("(stage seconds: the whole process; tokenize trains the tokenizer and encodes all")
    print(f" {args.rows:,} rows, the encode floor encodes the {train_rows:,} train rows;")
    print(" floor seconds: around the call; CPU s: the whole process, all threads)")

    # Speed as the floor does it: the encode floor sees only train, so compare time per row
    # the floor would need for all rows against the stage's.
    tok_ratio = (enc_s * args.rows / train_rows) / tok_s
    fast_ratio = (fast_s * args.rows / train_rows) / tok_s
    pre_ratio = pre_s / read_s
    print(f"\ntokenize / raw encode speed: {tok_ratio:.2f}x (aim >= 0.8) {aim(tok_ratio >= 0.8)}")
    print(f"  (against encode_batch_fast, which the stage uses: {fast_ratio:.2f}x)")
    print(f"preprocess / raw read time:  {pre_ratio:.1f}x (aim <= 10) {aim(pre_ratio <= 10)}")
    print_read_spread(reads, pre_s)
    print_process_floor(proc_s, read_s, pre_s)
    for name, peak in (("preprocess", pre_mb), ("tokenize", tok_mb)):
        if args.rows == 1_000_000:
            verdict = aim(peak < 1024)
        else:
            verdict = "aim needs --rows 1000000 (the growth aim: --growth-from)"
        print(f"{name} peak memory: {peak:,.0f} MB at {args.rows:,} rows (aim < 1024 MB) {verdict}")


GROWTH_AIM = 1.5  # peak at 5,000,000 rows against the peak at 1,000,000 (issue 14)


def growth(work: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    """``--growth-from``: each stage's peak at the two sizes (one run each) and the ratio."""
    py = sys.executable
    sizes = [args.growth_from, args.rows]
    peaks: dict[str, list[tuple[float, float, float]]] = {"preprocess": [], "tokenize": []}
    for rows in sizes:
        where = work if rows == args.rows else work / f"rows-{rows}"
        where.mkdir(parents=True, exist_ok=True)
        if args.task == "choice":
            csv_path = where / "swag.csv"
            size = prepare_csv(csv_path, rows, generate_choice_csv)
            write_choice_params(where / "params.yaml", csv_path, args.vocab_size, args.max_length)
            print(f"data: {rows:,} generated SWAG-like rows, {size / MB:.0f} MB CSV", flush=True)
        elif args.task == "token":
            conll = where / "sentences.conll"
            size = prepare_csv(conll, rows, generate_conll)
            write_token_params(where / "params.yaml", conll, args.vocab_size, args.max_length)
            print(f"data: {rows:,} generated sentences, {size / MB:.0f} MB CoNLL", flush=True)
        else:
            suffix, generator = FORMATS[args.format]
            csv_path = where / f"news{suffix}"
            size = prepare_csv(csv_path, rows, globals()[generator])
            write_params(where / "params.yaml", csv_path, args.vocab_size, args.max_length)
            print(f"data: {rows:,} generated rows, {size / MB:.0f} MB {args.format}", flush=True)
        only = args.preprocess_only or args.task == "choice" or args.format != "csv"
        stages = ["preprocess"] if only else ["preprocess", "tokenize"]
        for stage in stages:
            sec, peak, _, cpu = run_child([py, "-m", f"stages.{stage}"], where, env)
            peaks[stage].append((sec, peak, cpu))
    small, large = sizes
    print(f"\n{'':12} {'rows':>10} {'seconds':>8} {'CPU s':>8} {'peak MB':>8}")
    for stage, runs in peaks.items():
        for rows, (sec, peak, cpu) in zip(sizes, runs, strict=False):
            print(f"{stage:12} {rows:>10,} {sec:>8.1f} {cpu:>8.1f} {peak:>8.0f}")
    print()
    for stage, runs in peaks.items():
        if len(runs) < 2:
            continue
        ratio = runs[1][1] / runs[0][1]
        verdict = (
            aim(ratio <= GROWTH_AIM)
            if (small, large) == (1_000_000, 5_000_000)
            else "aim needs --growth-from 1000000 --rows 5000000"
        )
        print(
            f"{stage} peak at {large:,} rows / at {small:,}: {ratio:.2f}x "
            f"(aim <= {GROWTH_AIM}) {verdict}"
        )
        if small == 1_000_000:
            print(
                f"{stage} peak at 1,000,000 rows: {runs[0][1]:,.0f} MB (aim < 1024 MB) "
                f"{aim(runs[0][1] < 1024)}"
            )


# --------------------------------------------------------------------------- --task token

TOKEN_TYPES = ["PER", "ORG", "LOC", "MISC"]
POS_TAGS = ["NN", "NNP", "VBZ", "VBD", "DT", "IN", "JJ", "CD", "RB", ",", "."]

TOKEN_READ_FLOOR = """
import json, sys, time
import pyarrow.csv as pc
start = time.perf_counter()
table = pc.read_csv(
    sys.argv[1],
    read_options=pc.ReadOptions(autogenerate_column_names=True),
    parse_options=pc.ParseOptions(delimiter=" ", quote_char=False),
    convert_options=pc.ConvertOptions(column_types={f"f{i}": "string" for i in range(4)}),
)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": table.num_rows}))
"""


def generate_conll(path: Path, n: int, seed: int = 0) -> int:
    """``n`` sentences of CoNLL-2003-like data: four space-separated columns (word, POS,
    chunk, entity tag in IOB2 over PER/ORG/LOC/MISC), a blank line between sentences, a
    ``-DOCSTART- -X- -X- O`` line (and a blank one) before every document of about 15
    sentences, as the published files are laid out. Sentence lengths lognormal (about 14
    words, 1 to 120); about 1.7 entities of 1 to 3 capitalised words per sentence."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    vocab = sorted(
        {"".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(30000)}
    )
    cum_weights = list(accumulate(1.0 / (rank + 10) for rank in range(len(vocab))))
    names = {t: [w.capitalize() for w in rng.sample(vocab, 2000)] for t in TOKEN_TYPES}
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for i in range(n):
            if i % 15 == 0:
                fh.write("-DOCSTART- -X- -X- O\n\n")
            length = max(1, min(120, int(rng.lognormvariate(2.5, 0.55))))
            words = rng.choices(vocab, cum_weights=cum_weights, k=length)
            tags = ["O"] * length
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
                kind = rng.choice(TOKEN_TYPES)
                start = rng.randrange(length)
                span = range(start, min(length, start + rng.choice((1, 1, 2, 3))))
                if any(tags[j] != "O" for j in span):
                    continue  # entities do not overlap
                for j in span:
                    words[j] = rng.choice(names[kind])
                    tags[j] = ("B-" if j == start else "I-") + kind
            words[0] = words[0].capitalize()
            lines = []
            for word, tag in zip(words, tags, strict=True):
                chunk = "O" if tag == "O" else ("B-NP" if tag[0] == "B" else "I-NP")
                lines.append(
                    f"{word} {'NNP' if tag != 'O' else rng.choice(POS_TAGS)} {chunk} {tag}"
                )
            fh.write("\n".join(lines) + "\n\n")
    return path.stat().st_size


def write_token_params(path: Path, conll_path: Path, vocab_size: int, max_length: int) -> None:
    """:func:`write_params` for a CoNLL file (a token task: words and tags)."""
    import yaml

    write_params(path, conll_path, vocab_size, max_length)
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["data"].update(text_fields=["tokens"], label_field="tags")
    path.write_text(yaml.safe_dump(params), encoding="utf-8")


def token_main(args: argparse.Namespace, env: dict[str, str], work: Path) -> None:
    """``--task token``: the two stages on ``--rows`` generated CoNLL sentences, against
    the read floor (``pyarrow.csv`` of the space-separated file) and the encode floor
    (``encode_batch(..., is_pretokenized=True)`` of train's word lists)."""
    py = sys.executable
    conll = work / "sentences.conll"
    size = prepare_csv(conll, args.rows, generate_conll)
    write_token_params(work / "params.yaml", conll, args.vocab_size, args.max_length)
    print(
        f"data: {args.rows:,} generated CoNLL-2003-like sentences, {size / MB:.0f} MB; "
        f"tokenizer: WordPiece trained on train (vocab {args.vocab_size}), max_length "
        f"{args.max_length}; {os.cpu_count()} cores"
    )
    enc_args = [
        py,
        "-c",
        ENCODE_FLOOR,
        str(work / "data" / "processed" / "train"),
        str(work / "models" / "tokenizer" / "tokenizer.json"),
        str(args.max_length),
        "encode_batch",
        "tokens",
    ]
    best: dict[str, list[float]] = {}
    train_rows = 0
    reads: list[float] = []
    for _ in range(args.repeats):
        runs = {}
        runs["read"] = read_floor([py, "-c", TOKEN_READ_FLOOR, str(conll)], work, env, reads)
        sec, peak, _, cpu = run_child([py, "-m", "stages.preprocess"], work, env)
        runs["pre"] = (sec, peak, cpu)
        if not args.preprocess_only:
            sec, peak, _, cpu = run_child([py, "-m", "stages.tokenize"], work, env)
            runs["tok"] = (sec, peak, cpu)
            _, peak, out, cpu = run_child(enc_args, work, env)
            encoded = json.loads(out)
            runs["enc"], train_rows = (encoded["seconds"], peak, cpu), encoded["rows"]
        for key, (sec, mb, cpu) in runs.items():
            old = best.get(key, [float("inf"), 0.0, float("inf")])
            best[key] = [min(old[0], sec), max(old[1], mb), min(old[2], cpu)]
    names = {
        "read": "pyarrow read_csv (floor)",
        "pre": "preprocess stage",
        "enc": "encode_batch words, train",
        "tok": "tokenize stage",
    }
    print(f"\n{'':28} {'seconds':>8} {'peak MB':>8} {'sent./s':>10} {'CPU s':>8}")
    for key, name in names.items():
        if key in best:
            sec, mb, cpu = best[key]
            rows = train_rows if key == "enc" else args.rows
            print(f"{name:28} {sec:>8.2f} {mb:>8.0f} {rows / sec:>10,.0f} {cpu:>8.1f}")
    print("(stage seconds: the whole process; floor seconds: around the call; CPU s: the whole")
    print(" process, all threads; the read floor reads every line, the encode floor train's words)")
    pre_ratio = best["pre"][0] / best["read"][0]
    print(f"\npreprocess / raw read time:  {pre_ratio:.1f}x (aim <= 10) {aim(pre_ratio <= 10)}")
    print_read_spread(reads, best["pre"][0])
    if "tok" in best:
        tok_ratio = (best["enc"][0] * args.rows / train_rows) / best["tok"][0]
        print(f"tokenize / raw encode speed: {tok_ratio:.2f}x (aim >= 0.8) {aim(tok_ratio >= 0.8)}")
    for key, name in (("pre", "preprocess"), ("tok", "tokenize")):
        if key not in best:
            continue
        peak = best[key][1]
        if args.rows == 1_000_000:
            verdict = aim(peak < 1024)
        else:
            verdict = "aim needs --rows 1000000 (the growth aim: --growth-from)"
        print(
            f"{name} peak memory: {peak:,.0f} MB at {args.rows:,} sentences (aim < 1024 MB) "
            f"{verdict}"
        )


# --------------------------------------------------------------------------- --task choice

CHOICE_READ_FLOOR = """
import json, sys, time
import pyarrow as pa
import pyarrow.csv as pc
start = time.perf_counter()
names = ["sent1", *(f"ending{i}" for i in range(4)), "label"]
table = pc.read_csv(
    sys.argv[1], convert_options=pc.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": table.num_rows}))
"""


def generate_choice_csv(path: Path, n: int, seed: int = 0) -> int:
    """``n`` SWAG-like rows: ``sent1`` (a context sentence of about 14 words), ``ending0``
    .. ``ending3`` (about 10 words each) and ``label``, the right ending's index (0..3)."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    vocab = sorted(
        {"".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(30000)}
    )
    cum_weights = list(accumulate(1.0 / (rank + 10) for rank in range(len(vocab))))

    def sentence(mean: float) -> str:
        length = max(3, min(60, int(rng.lognormvariate(mean, 0.3))))
        words = rng.choices(vocab, cum_weights=cum_weights, k=length)
        words[0] = words[0].capitalize()
        return " ".join(words) + "."

    import csv

    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sent1", "ending0", "ending1", "ending2", "ending3", "label"])
        for _ in range(n):
            endings = [sentence(2.3) for _ in range(4)]
            writer.writerow([sentence(2.6), *endings, rng.randrange(4)])
    return path.stat().st_size


def write_choice_params(path: Path, csv_path: Path, vocab_size: int, max_length: int) -> None:
    """:func:`write_params` for a multiple-choice CSV (SWAG's columns)."""
    import yaml

    write_params(path, csv_path, vocab_size, max_length)
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["data"].update(
        task="choice",
        text_fields=["sent1"],
        label_field="label",
        choice={"options": [f"ending{i}" for i in range(4)]},
    )
    path.write_text(yaml.safe_dump(params), encoding="utf-8")


def choice_main(args: argparse.Namespace, env: dict[str, str], work: Path) -> None:
    """``--task choice``: the preprocess stage on ``--rows`` generated SWAG-like rows,
    against the read floor (``pyarrow.csv`` of the file)."""
    py = sys.executable
    csv_path = work / "swag.csv"
    size = prepare_csv(csv_path, args.rows, generate_choice_csv)
    write_choice_params(work / "params.yaml", csv_path, args.vocab_size, args.max_length)
    print(
        f"data: {args.rows:,} generated SWAG-like rows (a context, 4 endings), "
        f"{size / MB:.0f} MB CSV; {os.cpu_count()} cores"
    )
    best: dict[str, list[float]] = {}
    reads: list[float] = []
    for _ in range(args.repeats):
        runs = {}
        runs["read"] = read_floor([py, "-c", CHOICE_READ_FLOOR, str(csv_path)], work, env, reads)
        sec, peak, _, cpu = run_child([py, "-m", "stages.preprocess"], work, env)
        runs["pre"] = (sec, peak, cpu)
        for key, (sec, mb, cpu) in runs.items():
            old = best.get(key, [float("inf"), 0.0, float("inf")])
            best[key] = [min(old[0], sec), max(old[1], mb), min(old[2], cpu)]
    names = {"read": "pyarrow read_csv (floor)", "pre": "preprocess stage"}
    print(f"\n{'':28} {'seconds':>8} {'peak MB':>8} {'rows/s':>10} {'CPU s':>8}")
    for key, name in names.items():
        sec, mb, cpu = best[key]
        print(f"{name:28} {sec:>8.2f} {mb:>8.0f} {args.rows / sec:>10,.0f} {cpu:>8.1f}")
    print("(stage seconds: the whole process; floor seconds: around the call; CPU s: the whole")
    print(" process, all threads)")
    pre_ratio = best["pre"][0] / best["read"][0]
    print(f"\npreprocess / raw read time:  {pre_ratio:.1f}x (aim <= 10) {aim(pre_ratio <= 10)}")
    print_read_spread(reads, best["pre"][0])
    peak = best["pre"][1]
    verdict = (
        aim(peak < 1024)
        if args.rows == 1_000_000
        else "aim needs --rows 1000000 (the growth aim: --growth-from)"
    )
    print(f"preprocess peak memory: {peak:,.0f} MB at {args.rows:,} rows (aim < 1024 MB) {verdict}")


if __name__ == "__main__":
    main()
