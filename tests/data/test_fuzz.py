"""Fuzzing: random byte-level damage to valid files never ends in a traceback.

Each mutated file is read as the preprocess stage reads it (load, split, describe, build the
Arrow splits: everything the stage computes before it writes a byte). The outcome is either
data read or one UserError line that names the file. The stage writes its outputs only after
all of that succeeded (tests/stages/test_preprocess_bad_input.py checks the old outputs stay),
so no mutation can leave a partial output.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlpflow.data.prepare import load_splits, to_dataset_dict
from nlpflow.data.report import data_card, describe
from nlpflow.errors import UserError
from nlpflow.params import DataParams

TEXTS = ["a fine day", 'he said "hi", twice', "tab\there", "x", "émoji 😀", "line\nbreak"]


def _frame() -> pd.DataFrame:
    n = 24
    return pd.DataFrame(
        {
            "text": [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(n)],
            "label": ["ab"[i % 2] for i in range(n)],
        }
    )


def _conll() -> bytes:
    sentences = []
    for i in range(24):
        kind = "PER" if i % 2 else "LOC"
        sentences.append(f"Name{i}\tB-{kind}\nSmith\tI-{kind}\nwent\tO\nhome{i}\tO\n")
    return ("-DOCSTART-\tO\n\n" + "\n".join(sentences)).encode()


def _valid(name: str) -> bytes:
    frame = _frame()
    if name == "a.csv":
        return frame.to_csv(index=False).encode()
    if name == "a.tsv":
        return frame.to_csv(index=False, sep="\t").encode()
    if name == "a.jsonl":
        return frame.to_json(orient="records", lines=True, force_ascii=False).encode()
    if name == "a.json":
        return frame.to_json(orient="records", force_ascii=False).encode()
    if name == "a.parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    if name == "a.csv.gz":
        return gzip.compress(frame.to_csv(index=False).encode(), mtime=0)
    return _conll()


FILES = ["a.csv", "a.tsv", "a.jsonl", "a.json", "a.parquet", "a.csv.gz", "a.conll"]
# Bytes that matter to parsers: quotes, separators, line breaks, NUL, invalid UTF-8, braces.
INTERESTING = [b'"', b",", b"\t", b"\n", b"\r", b"\x00", b"\xff", b"\xc3", b"{", b"}", b"\\"]
EDIT = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.floats(0, 1, exclude_max=True),
    st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=3)),
)


def _mutate(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    out = bytearray(data)
    for op, where, chunk in edits:
        i = int(where * len(out)) if out else 0
        if op == "replace":
            out[i : i + len(chunk)] = chunk
        elif op == "insert":
            out[i:i] = chunk
        else:
            del out[i : i + len(chunk)]
    return bytes(out)


@pytest.mark.parametrize("name", FILES)
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(edits=st.lists(EDIT, min_size=1, max_size=4), skip=st.booleans())
def test_damaged_files_read_or_fail_in_one_line_naming_the_file(
    name: str, edits: list[tuple[str, float, bytes]], skip: bool
) -> None:
    data = _mutate(_valid(name), edits)
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        params = DataParams(
            source=str(path),
            text_fields=["tokens" if name.endswith("conll") else "text"],
            label_field="tags" if name.endswith("conll") else "label",
            on_bad_rows="skip" if skip else "fail",
        )
        try:
            prepared = load_splits(params, seed=0)
        except UserError as err:
            message = str(err)
            assert str(path) in message, message
            assert len(message.splitlines()) == 1, message
            return
        data_card(prepared, describe(prepared), seed=0, plots_rel="plots")
        dataset = to_dataset_dict(prepared)
        assert sum(len(dataset[s]) for s in dataset) == sum(
            len(rows) for rows in prepared.splits.values()
        )


@pytest.mark.parametrize("name", FILES)
def test_the_unmutated_files_read(name: str, tmp_path: Path) -> None:
    """The fuzz starts from valid files: each reads whole (so a mutation is what breaks it)."""
    path = tmp_path / name
    path.write_bytes(_valid(name))
    conll = name.endswith("conll")
    params = DataParams(
        source=str(path),
        text_fields=["tokens" if conll else "text"],
        label_field="tags" if conll else "label",
    )
    data = load_splits(params, seed=0)
    assert sum(len(rows) for rows in data.splits.values()) == 24
