"""What a trained model needs beside its weights to be used on new text: ``nlpflow.json``.

The train stage copies the tokenized data's meta (:class:`nlpflow.data.saved.DataMeta`: the
task, label names, text fields, ``max_length`` and truncation the inputs were encoded with,
and the cleaning the texts went through) into ``models/best/nlpflow.json`` (and
``models/last``). ``nlpflow predict`` and the model card read it from there, never from
params.yaml, which may have changed since the model was trained.

``models/best`` holds exactly :data:`MODEL_FILES` (listed one by one in dvc.yaml's train
outs, so that the ``model_card`` stage can own ``models/best/README.md``: DVC forbids one
output inside another). :func:`check_model_files` fails a train run whose model or
tokenizer saved other files, naming them, before DVC would cache an incomplete model.
"""

from __future__ import annotations

from pathlib import Path

from nlpflow.data.saved import DataMeta, read_meta, write_meta
from nlpflow.errors import UserError

MODEL_INFO = "nlpflow.json"
MODEL_CARD = "README.md"
# What save_pretrained writes for a classifier and a fast tokenizer (transformers 5), and
# nlpflow.json: dvc.yaml's train stage lists each as models/best/<name>.
SAVED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
MODEL_FILES = (*SAVED_FILES, MODEL_INFO)


def write_model_info(model_dir: str | Path, meta: DataMeta) -> None:
    """Write ``meta`` (the tokenized data's, with ``max_length`` and ``truncation``) as
    ``model_dir/nlpflow.json``, atomically."""
    if meta.max_length is None or meta.truncation is None:
        raise ValueError("the model info needs the tokenized meta (max_length, truncation)")
    write_meta(model_dir, meta, name=MODEL_INFO)


def read_model_info(model_dir: str | Path) -> DataMeta:
    """The meta saved beside a trained model. A directory without ``nlpflow.json`` (a model
    trained before it was written, or not by nlpflow) is a UserError saying what to do."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(
            f"{model_dir}: no config.json, so not a saved model; give the directory the train "
            "stage wrote (models/best)"
        )
    if not (model_dir / MODEL_INFO).is_file():
        raise UserError(
            f"{model_dir}/{MODEL_INFO} not found: the model was not saved by this version of "
            "the train stage; rerun it (dvc repro train, which resumes from its checkpoint)"
        )
    return read_meta(model_dir, tokenized=True, name=MODEL_INFO, stage="train")


def check_model_files(model_dir: str | Path) -> None:
    """``model_dir`` holds exactly :data:`MODEL_FILES`; else a UserError naming the
    difference and what to do (the saved model stays; rerunning train resumes from its last
    checkpoint, so nothing is trained again)."""
    model_dir = Path(model_dir)
    found = {p.name for p in model_dir.iterdir()}
    extra = sorted(found - set(MODEL_FILES))
    missing = sorted(set(MODEL_FILES) - found)
    if extra or missing:
        what = []
        if extra:
            what.append(f"also wrote {extra}")
        if missing:
            what.append(f"did not write {missing}")
        raise UserError(
            f"{model_dir}: saving the model {' and '.join(what)}, but dvc.yaml's train stage "
            f"lists exactly {list(MODEL_FILES)} as its outs; list those files under train's "
            "outs (models/best/<name>) and nlpflow.modelinfo.SAVED_FILES, then rerun (train "
            "resumes from its checkpoint)"
        )
