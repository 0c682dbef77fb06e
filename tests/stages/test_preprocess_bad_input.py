"""Malformed inputs through the real preprocess stage: one exact line, exit 2, nothing written.

Each case writes a bad file, points params.yaml at it and runs the stage. The previous
outputs (written by a good run first) must be left exactly as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stages import preprocess

F = "{f}"  # replaced by the bad file's path in the expected message


def _parquet_garbage(path: Path) -> None:
    path.write_bytes(b"PAR1 this is not really parquet")


CASES: list[tuple[str, str, Any, dict[str, Any], str]] = [
    ("empty", "e.csv", "", {}, f"{F}: the file is empty; expected a header line and data rows"),
    ("header only", "h.csv", "text,label\n", {}, f"{F}: no data rows (only a header); add rows"),
    (
        "missing column",
        "m.csv",
        "body,label\nx,a\n",
        {},
        f"{F}, line 1: the first row ['body', 'label'] does not name the columns ['text', 'label']; "
        "if the file has no header set data.column_names, otherwise fix data.text_fields / "
        "data.label_field",
    ),
    (
        "missing column jsonl",
        "m.jsonl",
        '{"body": "x", "label": "a"}\n',
        {},
        f"{F}: column(s) ['text'] not found; the file has ['body', 'label']; set data.text_fields "
        "and data.label_field to existing columns",
    ),
    (
        "empty label",
        "l.csv",
        "text,label\nx,a\ny,\n",
        {},
        f"{F}, line 3, column 'label': the label is empty; fill it in or remove the row",
    ),
    (
        "missing label jsonl",
        "ml.jsonl",
        '{"text": "x", "label": "a"}\n{"text": "y"}\n',
        {},
        f"{F}, line 2, column 'label': the label is missing; fill it in or remove the row",
    ),
    (
        "null text jsonl",
        "nt.jsonl",
        '{"text": "x", "label": "a"}\n{"text": null, "label": "a"}\n',
        {},
        f"{F}, line 2, column 'text': expected text, got None; fill in the text or remove the row",
    ),
    (
        "invalid utf-8",
        "u.csv",
        b"text,label\nok,a\n\xff\xfebad,a\n",
        {},
        f"{F}, line 3: not valid UTF-8 (byte 16); re-save the file as UTF-8, or set "
        "data.encoding to the file's encoding (e.g. cp1252 for Excel on Windows)",
    ),
    (
        "ragged long",
        "r.csv",
        "text,label\nx,a\ny,a,extra\n",
        {},
        f"{F}, line 3: expected 2 columns as in the header, found 3; quote fields that contain the "
        "delimiter, or set data.quoting: none if quotes are ordinary characters",
    ),
    (
        "ragged short",
        "s.tsv",
        "text\tlabel\nx\ta\ny\n",
        {},
        f"{F}, line 3: expected 2 columns as in the header, found 1; quote fields that contain the "
        "delimiter, or set data.quoting: none if quotes are ordinary characters",
    ),
    (
        "label list",
        "t.jsonl",
        '{"text": "x", "label": "a"}\n{"text": "y", "label": ["a"]}\n',
        {},
        f"{F}, line 2, column 'label': label ['a'] is a list; labels must be strings or integers",
    ),
    (
        "label float",
        "fl.jsonl",
        '{"text": "x", "label": 0.5}\n',
        {},
        f"{F}, line 1, column 'label': label 0.5 is a float; labels must be strings or integers",
    ),
    (
        "label bool",
        "b.jsonl",
        '{"text": "x", "label": true}\n',
        {},
        f"{F}, line 1, column 'label': label True is a bool; labels must be strings or integers",
    ),
    (
        "invalid json",
        "j.jsonl",
        '{"text": "x", "label": "a"}\n{"text": "y", \n',
        {},
        f"{F}, line 2: not valid JSON (Expecting property name enclosed in double quotes); fix the line",
    ),
    (
        "json not object",
        "o.jsonl",
        '["x", "a"]\n',
        {},
        f"{F}, line 1: expected a JSON object per line",
    ),
    ("unreadable parquet", "p.parquet", _parquet_garbage, {}, f"{F}: not a readable Parquet file"),
    (
        "unknown extension",
        "x.txt",
        "text,label\nx,a\n",
        {},
        f"{F}: cannot tell the format from the extension '.txt'; use one of ['.bio', '.conll', "
        "'.csv', '.iob', '.json', '.jsonl', '.parquet', '.tsv'] (optionally compressed: .gz, "
        ".bz2, .xz, .zip, .zst) or set data.format",
    ),
    (
        "file not found",
        "missing.csv",
        None,
        {},
        # (startswith: the list of built-in sources goes on with every task family's)
        "params.yaml: data.source '{f}' does not exist; give a file, a directory, builtin:anagram, "
        "builtin:entities, ",
    ),
    (
        "bad conll tag",
        "c.conll",
        "Ada B-PER\nwrote X-VERB\n",
        {},
        f"{F}, line 2, column 'column -1': tag 'X-VERB' is not O, B-TYPE or I-TYPE",
    ),
    (
        "conll ragged",
        "r.conll",
        "Ada NNP B-PER\nwrote O\n",
        {},
        f"{F}, line 2: expected 3 whitespace-separated columns (token ... tag), found 2",
    ),
    (
        "duplicate header name",
        "d.csv",
        "id,text,label,text\n1,a,x,b\n",
        {},
        f"{F}, line 1: column name 'text' appears 2 times in the header (columns 2, 4); rename "
        "the columns so that each name is used once",
    ),
    (
        "stray opening quote",
        "q.tsv",
        'text\tlabel\n"Hey there, long time\tham\nWIN now\tspam\nsee "you\tham\n',
        {},
        f"{F}, line 2: a quoted field opened on line 2 closes on line 4 with more text after the "
        "closing quote, so lines 2-4 cannot be read as rows; double the quotes inside a quoted "
        'field (""), or set data.quoting: none if quotes are ordinary characters',
    ),
    (
        "semicolon excel",
        "x.csv",
        "\ufefftext;label\r\ngut;pos\r\n".encode(),
        {},
        f"{F}, line 1: the header is ';'-separated (['text', 'label']), not ','-separated; set "
        "data.delimiter: ';'",
    ),
    (
        "utf-16",
        "w.csv",
        "text,label\nx,a\n".encode("utf-16"),
        {"on_bad_rows": "skip"},
        f"{F}: the file is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; set "
        "data.encoding: utf-16 or re-save it as UTF-8",
    ),
    (
        "corrupt gzip",
        "z.csv.gz",
        b"\x1f\x8b\x08 not gzip",
        {},
        f"{F}: cannot decompress it as gzip (",
    ),
    (
        "text field named label",
        "n.csv",
        "label,sentiment\nx,a\n",
        {"text_fields": ["label"], "label_field": "sentiment"},
        f"{F}: text field 'label' has a name the processed data writes itself (id, label); "
        "rename that column in the file and in data.text_fields",
    ),
    (
        "one class only",
        "one.csv",
        "text,label\n" + "".join(f"t{i},a\n" for i in range(20)),
        {},
        f"{F}: the train split has 1 distinct label(s) (['a']); need >= 2",
    ),
]


def _write(path: Path, content: Any) -> None:
    if content is None:
        return
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def _outputs(tmp_path: Path) -> dict[str, Path]:
    return {
        "out": tmp_path / "processed",
        "metrics": tmp_path / "preprocess.json",
        "plots": tmp_path / "plots",
        "report": tmp_path / "data.md",
    }


def _argv(params: Path, outs: dict[str, Path]) -> list[str]:
    return ["--params", str(params), *[x for k, p in outs.items() for x in (f"--{k}", str(p))]]


def _snapshot(outs: dict[str, Path]) -> dict[str, bytes]:
    files = {}
    for p in outs.values():
        for f in [p] if p.is_file() else sorted(p.rglob("*")):
            if f.is_file():
                files[str(f)] = f.read_bytes()
    return files


@pytest.mark.parametrize(
    ("name", "filename", "content", "extra", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_one_line_and_old_outputs_kept(
    tmp_path: Path,
    write_params: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    filename: str,
    content: Any,
    extra: dict[str, Any],
    message: str,
) -> None:
    outs = _outputs(tmp_path)
    preprocess.main(_argv(write_params(), outs))  # a good run: the outputs to keep
    before = _snapshot(outs)
    assert before
    capsys.readouterr()

    bad = tmp_path / filename
    _write(bad, content)
    params = write_params(
        data={"source": str(bad), "text_fields": ["text"], "label_field": "label", **extra}
    )
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main(_argv(params, outs))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    expected = "error: " + message.replace(F, str(bad))
    assert err.count("\n") == 1, err
    assert err.rstrip("\n").startswith(expected), f"\n{err}\n{expected}"
    assert _snapshot(outs) == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_directory_without_data_files(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "notes.md").write_text("x")
    params = write_params(data={"source": str(folder), "text_fields": ["text"]})
    with pytest.raises(SystemExit):
        preprocess.main(_argv(params, _outputs(tmp_path)))
    assert capsys.readouterr().err.strip() == (
        f"error: {folder}: no data files (.csv, .tsv, .jsonl, .parquet, .conll) in the "
        "directory; it has ['notes.md']"
    )
    assert not _outputs(tmp_path)["out"].exists()


def test_label_unseen_in_train(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "train.csv").write_text(
        "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20))
    )
    (tmp_path / "test.csv").write_text("text,label\nnew,c\n")
    params = write_params(
        data={
            "files": {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")},
            "text_fields": ["text"],
        }
    )
    with pytest.raises(SystemExit):
        preprocess.main(_argv(params, _outputs(tmp_path)))
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'test.csv'}: label(s) ['c'] occur in the test split but never in "
        "train; "
        "fix the labels or re-split so train has every class"
    )


def test_skip_bad_rows_counts_them_in_the_report(
    tmp_path: Path, write_params: Callable[..., Path]
) -> None:
    good = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(40))
    bad_file = tmp_path / "mixed.csv"
    bad_file.write_bytes(("text,label\n" + good + "no label,\nx,a,extra\n").encode() + b"\xff,a\n")
    params = write_params(
        data={"source": str(bad_file), "text_fields": ["text"], "on_bad_rows": "skip"}
    )
    outs = _outputs(tmp_path)
    preprocess.main(_argv(params, outs))
    report = json.loads(outs["metrics"].read_text())
    assert report["skipped_rows"] == 3
    assert sum(report["splits"][s]["rows"] for s in report["splits"]) == 40
    card = outs["report"].read_text()
    assert "3 bad row(s) skipped" in card and "the label is empty" in card


def test_leakage_fail_policy(
    tmp_path: Path, write_params: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "train.csv").write_text(
        "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20))
    )
    (tmp_path / "test.csv").write_text("text,label\nt3,b\nfresh,a\n")
    params = write_params(
        data={"source": str(tmp_path), "text_fields": ["text"], "leakage": "fail"}
    )
    with pytest.raises(SystemExit):
        preprocess.main(_argv(params, _outputs(tmp_path)))
    assert capsys.readouterr().err.strip() == (
        "error: 1 text(s) occur in more than one split (train/test: 1 exact + 0 normalised); "
        "e.g. 't3'; set data.leakage: drop to remove them from the later split"
    )
