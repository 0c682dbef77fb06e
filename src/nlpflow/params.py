"""Typed parameters: load ``params.yaml``, reject unknown keys and bad values before any work.

Every section of ``params.yaml`` maps to a dataclass below. :func:`load_params` walks the
YAML and the dataclasses together, so an error names the full key path (``train.lr``) and,
for a typo, the nearest valid key.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import itertools
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from nlpflow.errors import UserError
from nlpflow.families.choice.config import ChoiceParams
from nlpflow.families.text2text.params import (
    GenerationParams,
    Text2TextDataParams,
    Text2TextModelParams,
)

SPLITS = ("train", "validation", "test")


class ParamsError(UserError):
    """A value in params.yaml is missing, unknown, of the wrong type or out of range."""


# --------------------------------------------------------------------------- sections


@dataclass
class AnagramParams:
    """The built-in anagram pair task: is the second word a rearrangement of the first?"""

    size: int = 4000
    min_word_length: int = 4
    max_word_length: int = 8
    alphabet: str = "abcdefghijklmnopqrstuvwxyz"
    positive_fraction: float = 0.5
    # Relative weights of the near-miss kinds among the negatives (dropped, added, substituted).
    near_misses: dict[str, float] = field(
        default_factory=lambda: {"dropped": 1.0, "added": 1.0, "substituted": 1.0}
    )

    def validate(self, path: str) -> None:
        _check(self.size >= 30, f"{path}.size", "must be at least 30 (enough for three splits)")
        kinds = ("dropped", "added", "substituted")
        unknown = sorted(set(self.near_misses) - set(kinds))
        _check(not unknown, f"{path}.near_misses", f"has unknown kinds {unknown}; use {kinds}")
        _check(
            all(w >= 0 for w in self.near_misses.values()) and sum(self.near_misses.values()) > 0,
            f"{path}.near_misses",
            "weights must be >= 0 with at least one > 0",
        )
        _check(self.min_word_length >= 2, f"{path}.min_word_length", "must be at least 2")
        _check(
            self.max_word_length >= self.min_word_length,
            f"{path}.max_word_length",
            f"must be >= min_word_length ({self.min_word_length})",
        )
        _check(
            len(set(self.alphabet)) >= 3 and " " not in self.alphabet,
            f"{path}.alphabet",
            "needs at least 3 distinct non-space characters",
        )
        _check(0 < self.positive_fraction < 1, f"{path}.positive_fraction", "must be in (0, 1)")


@dataclass
class EntitiesParams:
    """The built-in token-classification task: sentences with PER/LOC/ORG entities in BIO tags."""

    size: int = 2000
    min_words: int = 4
    max_words: int = 12

    def validate(self, path: str) -> None:
        _check(self.size >= 30, f"{path}.size", "must be at least 30 (enough for three splits)")
        _check(self.min_words >= 3, f"{path}.min_words", "must be at least 3")
        _check(
            self.max_words >= self.min_words,
            f"{path}.max_words",
            f"must be >= min_words ({self.min_words})",
        )


@dataclass
class RegressionParams:
    """The built-in regression task: the letter overlap of two strings (see
    nlpflow.families.regression.builtin)."""

    size: int = 2000
    min_letters: int = 4
    max_letters: int = 7
    alphabet: int = 10  # letters drawn from the first N of a..z

    def validate(self, path: str) -> None:
        _check(self.size >= 30, f"{path}.size", "must be at least 30 (enough for three splits)")
        _check(self.min_letters >= 2, f"{path}.min_letters", "must be at least 2")
        _check(
            self.max_letters >= self.min_letters,
            f"{path}.max_letters",
            f"must be >= min_letters ({self.min_letters})",
        )
        _check(2 <= self.alphabet <= 26, f"{path}.alphabet", "must be in [2, 26]")


@dataclass
class QaParams:
    """The built-in extractive QA task (``builtin:qa``): short contexts of facts and one
    question each (see nlpflow.families.qa.builtin)."""

    size: int = 2000  # questions, one per context
    min_facts: int = 4  # sentences of a context (4 to 8)
    max_facts: int = 6
    unanswerable: float = 0.3  # share of questions the context cannot answer (0: SQuAD v1)

    def validate(self, path: str) -> None:
        _check(self.size >= 30, f"{path}.size", "must be at least 30 (enough for three splits)")
        _check(4 <= self.min_facts <= 8, f"{path}.min_facts", "must be in [4, 8]")
        _check(
            self.min_facts <= self.max_facts <= 8,
            f"{path}.max_facts",
            f"must be in [min_facts ({self.min_facts}), 8]",
        )
        _check(0 <= self.unanswerable < 1, f"{path}.unanswerable", "must be in [0, 1)")


@dataclass
class MultilabelParams:
    """Multi-label tasks: the built-in task (letter strings tagged with their properties) and
    how label lists are written in files."""

    size: int = 2000
    min_length: int = 4  # letters per built-in text
    max_length: int = 8
    # CSV/TSV: the character between labels in a cell ("a,b"); JSONL/Parquet hold lists.
    delimiter: str = ","
    # An example with no label: allow (none of the labels applies) or fail.
    empty: Literal["allow", "fail"] = "allow"
    # The labels allowed ([] = any): a label outside the list is refused on reading. The
    # label names (the model's outputs) are those the data have.
    labels: list[str] = field(default_factory=list)

    def validate(self, path: str) -> None:
        _check(self.size >= 30, f"{path}.size", "must be at least 30 (enough for three splits)")
        _check(self.min_length >= 3, f"{path}.min_length", "must be at least 3")
        _check(
            self.max_length >= self.min_length,
            f"{path}.max_length",
            f"must be >= min_length ({self.min_length})",
        )
        _check(
            len(self.delimiter) == 1 and self.delimiter not in ('"', "\n", "\r", " "),
            f"{path}.delimiter",
            "must be one character, not a quote, a space or a line break",
        )
        dupes = sorted({n for n in self.labels if self.labels.count(n) > 1})
        _check(not dupes, f"{path}.labels", f"names {dupes} more than once")
        _check(all(n.strip() for n in self.labels), f"{path}.labels", "holds an empty name")


@dataclass
class CleaningParams:
    """Optional text cleaning; every change is counted in the data report."""

    unicode: Literal["none", "NFC", "NFKC"] = "NFKC"
    whitespace: bool = True  # collapse runs of whitespace, strip the ends
    lowercase: bool = False
    replace_urls: bool = False  # URLs become <url>
    replace_users: bool = False  # @handles become @user
    drop_empty: bool = True
    drop_duplicates: bool = True  # exact duplicates (text and label) within a split
    max_chars: int = 0  # cap on characters per text field; 0 = no cap

    def validate(self, path: str) -> None:
        _check(self.max_chars >= 0, f"{path}.max_chars", "must be >= 0 (0 = no cap)")


@dataclass
class DataParams:
    """Where the data comes from and how it is shaped into splits."""

    # "builtin:anagram", "builtin:entities", a file (CSV, TSV, JSONL, Parquet, CoNLL), a
    # directory of per-split files or one saved with datasets' save_to_disk, or "hub:<name>".
    source: str = "builtin:anagram"
    # Explicit per-split files ({train: a.tsv, test: b.tsv}); when set, source is not read.
    files: dict[str, str] = field(default_factory=dict)
    text_fields: list[str] = field(default_factory=lambda: ["first", "second"])
    label_field: str = "label"
    # The task family (nlpflow.families): "auto" (a list label is a token task, else a
    # sequence task; a built-in source fixes its own) or a family's name, e.g. regression.
    task: str = "auto"
    # Fractions used when the source is one file; when only train and test are given,
    # validation is carved from train in the proportion validation / (train + validation).
    splits: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1}
    )
    # "auto" picks from the file extension (after .gz, .bz2, .xz, .zip or .zst, which are read).
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "conll"] = "auto"
    # The text encoding of CSV, TSV, JSONL and CoNLL files (a Python codec name: utf-8,
    # utf-16, cp1252, latin-1, ...). A UTF-8 byte-order mark is allowed and dropped.
    encoding: str = "utf-8"
    delimiter: str = ""  # "" = comma for csv, tab for tsv
    quoting: Literal["minimal", "none"] = "minimal"  # "none": quotes are ordinary characters
    # Whether delimited files start with a header; "auto": yes when the first row names the
    # configured columns, otherwise column_names must be given.
    header: bool | Literal["auto"] = "auto"
    column_names: list[str] = field(default_factory=list)  # for files without a header
    # CoNLL: the column holding the tag (tokens are column 0); -1 = the last column.
    conll_tag_column: int = -1
    hub_config: str = ""
    hub_splits: dict[str, str] = field(default_factory=dict)  # our split -> hub split name
    on_bad_rows: Literal["fail", "skip"] = "fail"
    leakage: Literal["warn", "drop", "fail"] = "warn"
    cleaning: CleaningParams = field(default_factory=CleaningParams)
    anagram: AnagramParams = field(default_factory=AnagramParams)
    entities: EntitiesParams = field(default_factory=EntitiesParams)
    regression: RegressionParams = field(default_factory=RegressionParams)
    qa: QaParams = field(default_factory=QaParams)
    text2text: Text2TextDataParams = field(default_factory=Text2TextDataParams)
    multilabel: MultilabelParams = field(default_factory=MultilabelParams)
    # Multiple choice: where a file's options are, the label base, the built-in task.
    choice: ChoiceParams = field(default_factory=ChoiceParams)

    def validate(self, path: str) -> None:
        _check(1 <= len(self.text_fields) <= 2, f"{path}.text_fields", "must name 1 or 2 columns")
        from nlpflow.families.names import TASKS

        tasks = ["auto", *TASKS]
        close = difflib.get_close_matches(self.task, tasks, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        _check(self.task in tasks, f"{path}.task", f"must be one of {tasks}{hint}")
        _check(
            not self.text2text.label_task or self.task == "text2text",
            f"{path}.text2text.label_task",
            f"runs a classification source as generation and needs {path}.task: text2text "
            f"(it is {self.task})",
        )
        _check(
            self.label_field not in self.text_fields,
            f"{path}.label_field",
            "must differ from the text fields",
        )
        unknown = sorted(set(self.splits) - set(SPLITS))
        _check(not unknown, f"{path}.splits", f"unknown split {unknown}; use {list(SPLITS)}")
        for name in SPLITS:
            _check(name in self.splits, f"{path}.splits.{name}", "is required")
            _check(0 < self.splits[name] < 1, f"{path}.splits.{name}", "must be in (0, 1)")
        total = sum(self.splits.values())
        _check(abs(total - 1) < 1e-6, f"{path}.splits", f"must sum to 1 (they sum to {total:g})")
        for key in (self.files, self.hub_splits):
            bad = sorted(set(key) - set(SPLITS))
            name = "files" if key is self.files else "hub_splits"
            _check(not bad, f"{path}.{name}", f"has unknown split {bad}; use {list(SPLITS)}")
        if self.files:
            _check("train" in self.files, f"{path}.files.train", "is required when files is set")
            _check("test" in self.files, f"{path}.files.test", "is required when files is set")
        _check(len(self.delimiter) <= 1, f"{path}.delimiter", "must be one character or empty")
        _check(
            self.delimiter not in ('"', "\n", "\r"),
            f"{path}.delimiter",
            "cannot be a quote or a line break",
        )
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            _check(False, f"{path}.encoding", f"'{self.encoding}' is not a known text encoding")
        dupes = sorted({c for c in self.column_names if self.column_names.count(c) > 1})
        _check(
            not dupes, f"{path}.column_names", f"names {dupes} more than once; names must differ"
        )


@dataclass
class TokenizerParams:
    """Tokenization; ``kind`` and ``vocab_size`` apply to a tokenizer trained on the train split
    (when model.name_or_path is empty), the rest to any tokenizer."""

    kind: Literal["wordpiece", "bpe", "char"] = "wordpiece"
    vocab_size: int = 512
    lowercase: bool = True
    # A number, or "auto": the auto_percentile of train token lengths, capped by the model.
    max_length: int | Literal["auto"] = 64
    auto_percentile: float = 99.0
    truncation: Literal["longest_first", "only_first", "only_second"] = "longest_first"
    num_proc: int = 1  # processes for datasets.map; worth it for large data sets only
    # A trained tokenizer learns its merges from at most this many train texts, drawn with
    # `seed` (0: all). Its alphabet still covers every train text. Below the limit nothing
    # changes; above it, training takes time in proportion to the sample, not the data.
    train_sample: int = 100_000
    # Extractive QA: tokens two windows of one context share (a context longer than fits
    # beside its question in max_length is split into overlapping windows).
    stride: int = 16

    def validate(self, path: str) -> None:
        _check(self.vocab_size >= 16, f"{path}.vocab_size", "must be at least 16")
        # Below max_length too: checked where windows are made (a qa task's tokenize), since
        # other tasks never read it.
        _check(self.stride >= 0, f"{path}.stride", "must be >= 0")
        if self.max_length != "auto":
            _check(self.max_length >= 4, f"{path}.max_length", "must be at least 4 or 'auto'")
        _check(0 < self.auto_percentile <= 100, f"{path}.auto_percentile", "must be in (0, 100]")
        _check(self.num_proc >= 1, f"{path}.num_proc", "must be >= 1")
        _check(self.train_sample >= 0, f"{path}.train_sample", "must be >= 0 (0: all)")


@dataclass
class LoraParams:
    """LoRA (``peft``): the pretrained weights stay frozen and low-rank adapters are trained
    beside the attention projections ``target_modules``; the update is ``alpha / rank * B A``.

    ``target_modules: auto`` takes peft's own choice for the architecture (GPT-2 ``c_attn``,
    T5 ``q``/``v``, BERT ``query``/``value``, Llama ``q_proj``/``v_proj``). ``models/best`` is
    always the whole model with the adapter merged in; with ``merge: false`` the adapter
    alone is also saved in ``models/adapter`` (base + adapter loads from there).
    """

    enabled: bool = False
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str | list[str] = "auto"
    merge: bool = False

    def validate(self, path: str) -> None:
        _check(self.rank >= 1, f"{path}.rank", "must be >= 1")
        _check(self.alpha > 0, f"{path}.alpha", "must be > 0")
        _check(0 <= self.dropout < 1, f"{path}.dropout", "must be in [0, 1)")
        if isinstance(self.target_modules, str):
            _check(
                self.target_modules == "auto",
                f"{path}.target_modules",
                "must be auto or a list of module names (e.g. [c_attn] or [q, v])",
            )
        else:
            _check(
                bool(self.target_modules) and all(self.target_modules),
                f"{path}.target_modules",
                "must name at least one module (or be auto)",
            )


@dataclass
class ModelParams:
    """A pretrained model (local directory or hub id) or a small BERT-like model from config.

    The head follows the data: sequence classification (binary or multi-class) or token
    classification, with ``id2label``/``label2id`` from the data's label names.
    """

    # Empty: build from the config below with the tokenizer trained by the tokenize stage.
    name_or_path: str = ""
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    # Hidden and attention dropout. A pretrained model takes it too; null keeps its own.
    dropout: float | None = 0.1
    # Embeddings (token, position, segment) get no gradient: faster, rarely less accurate.
    freeze_embeddings: bool = False
    # Standard deviation of the initial weights of a model built from the config (BERT's
    # `initializer_range`; ignored for a pretrained model, whose weights are loaded).
    initializer_range: float = 0.02
    trust_remote_code: bool = False
    # Text-to-text tasks: encoder-decoder or decoder-only, the prompt, input/target lengths.
    text2text: Text2TextModelParams = field(default_factory=Text2TextModelParams)
    # Parameter-efficient fine-tuning of a pretrained model (model.name_or_path).
    lora: LoraParams = field(default_factory=LoraParams)

    def validate(self, path: str) -> None:
        _check(
            not self.lora.enabled or bool(self.name_or_path),
            f"{path}.lora.enabled",
            "needs a pretrained model to adapt: set model.name_or_path (a local directory or "
            "hub id), or lora.enabled: false to train the model built from the sizes here",
        )
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
            _check(getattr(self, key) >= 1, f"{path}.{key}", "must be >= 1")
        _check(
            self.hidden_size % self.num_heads == 0,
            f"{path}.hidden_size",
            f"must be divisible by num_heads ({self.num_heads})",
        )
        _check(
            self.dropout is None or 0 <= self.dropout < 1,
            f"{path}.dropout",
            "must be in [0, 1) (or null: the pretrained model's own)",
        )
        _check(
            0 < self.initializer_range <= 1,
            f"{path}.initializer_range",
            "must be in (0, 1] (BERT's default is 0.02)",
        )


@dataclass
class ProbeParams:
    """Batch-size probe: the largest batch that fits, by doubling then bisection."""

    # A cap: the search tries no batch above this nor above train.effective_batch_size.
    max_batch_size: int = 256
    max_candidates: int = 20  # the most training steps measured
    # CPU only: memory a training step may use, in MB (> 1) or as a fraction of available (<= 1).
    memory_budget: float = 0.5
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def validate(self, path: str) -> None:
        _check(self.max_batch_size >= 1, f"{path}.max_batch_size", "must be >= 1")
        _check(self.max_candidates >= 2, f"{path}.max_candidates", "must be >= 2")
        _check(self.memory_budget > 0, f"{path}.memory_budget", "must be > 0")


# Validation metrics of every task family (nlpflow.families: TrainFamily.metric_names); the
# train stage checks that the task measures the one chosen.
EARLY_STOPPING_METRICS = (
    *("loss", "accuracy", "f1_macro", "entity_f1"),
    *("mse", "rmse", "mae", "r2", "pearson", "spearman"),  # regression
    *("f1_micro", "subset_accuracy"),  # multilabel
    "exact_match",  # text2text, with train.generation_sample
)


@dataclass
class EarlyStoppingParams:
    """Stopping on the validation metric; NaN or infinite loss always stops at once."""

    # loss, accuracy, f1_macro, entity_f1 (token tasks); regression: rmse, mse, mae (mode
    # min), r2, pearson, spearman (mode max); multilabel: f1_micro, subset_accuracy (max)
    metric: str = "f1_macro"
    mode: Literal["max", "min"] = "max"
    patience: int = 3  # evaluations without improvement; 0 = never stop for that
    min_delta: float = 0.0  # an improvement must beat the best by more than this
    target: float | None = None  # stop as soon as the metric reaches this value
    divergence: float | None = None  # stop as soon as the metric is worse than this value

    def validate(self, path: str) -> None:
        _check(self.patience >= 0, f"{path}.patience", "must be >= 0 (0 = no patience stop)")
        _check(self.min_delta >= 0, f"{path}.min_delta", "must be >= 0")
        allowed = EARLY_STOPPING_METRICS
        close = difflib.get_close_matches(self.metric, allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        _check(self.metric in allowed, f"{path}.metric", f"must be one of {list(allowed)}{hint}")
        if self.target is not None and self.divergence is not None:
            if self.mode == "max":
                worse = self.divergence >= self.target
            else:
                worse = self.divergence <= self.target
            _check(
                not worse,
                f"{path}.divergence",
                f"must be on the bad side of target ({self.target:g}) for mode {self.mode}",
            )


@dataclass
class TrainParams:
    epochs: int = 12
    max_steps: int = 0  # optimizer steps; 0 = epochs decide, else whichever comes first
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 2e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.01  # never on biases and LayerNorm weights
    # Linear warm-up: a fraction of all optimizer steps, or a step count (overrides the ratio).
    warmup_ratio: float = 0.1
    warmup_steps: int = 0
    schedule: Literal["linear", "cosine", "constant", "one_cycle"] = "linear"
    effective_batch_size: int = 32  # kept fixed: the probe picks batch size x accumulation steps
    max_grad_norm: float = 1.0  # 0 = no clipping; the pre-clip norm is logged either way
    label_smoothing: float = 0.0
    # The loss: auto (the task's own: cross-entropy; regression mse), cross_entropy, mse or
    # huber (regression; on the standardised target, huber_delta in its standard deviations).
    loss: Literal["auto", "cross_entropy", "mse", "huber"] = "auto"
    huber_delta: float = 1.0
    # none, balanced (inverse class frequency in train) or a weight per label name.
    class_weights: Literal["none", "balanced"] | dict[str, float] = "none"
    batching: Literal["length_grouped", "random"] = "length_grouped"
    # auto: bf16 on CUDA; on the CPU bf16 autocast where the probe measures it faster, else fp32.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False  # torch.compile the model (worth it on CUDA for long runs)
    eval_every_steps: int = 0  # 0 = validate at each epoch end
    checkpoint_every_steps: int = 500  # besides each epoch end; 0 = epoch ends only
    keep_checkpoints: int = 2
    threads: int = 1  # torch CPU threads per process (see params.yaml); 0 = torch's default
    processes: int = 1  # data-parallel processes (torchrun); gloo on CPU, NCCL on GPUs
    overfit_batches: int = 0  # N > 0: train on N fixed batches, regularisation off
    tensorboard: bool = False  # TensorBoard event files too (needs the tensorboard package)
    early_stopping: EarlyStoppingParams = field(default_factory=EarlyStoppingParams)
    # Text-to-text: validation rows (the first N) generated greedily at each evaluation, for
    # val_exact_match (early stopping, the pruner, the epoch curves); 0 = none.
    generation_sample: int = 0

    def validate(self, path: str) -> None:
        _check(self.generation_sample >= 0, f"{path}.generation_sample", "must be >= 0")
        _check(self.epochs >= 1, f"{path}.epochs", "must be >= 1")
        _check(self.max_steps >= 0, f"{path}.max_steps", "must be >= 0 (0 = epochs decide)")
        _check(self.lr > 0, f"{path}.lr", f"must be > 0 (got {self.lr:g})")
        _check(0 <= self.momentum < 1, f"{path}.momentum", "must be in [0, 1)")
        _check(self.weight_decay >= 0, f"{path}.weight_decay", "must be >= 0")
        _check(0 <= self.warmup_ratio < 1, f"{path}.warmup_ratio", "must be in [0, 1)")
        _check(self.warmup_steps >= 0, f"{path}.warmup_steps", "must be >= 0")
        _check(
            self.schedule != "one_cycle" or self.warmup_ratio > 0 or self.warmup_steps > 0,
            f"{path}.schedule",
            "one_cycle needs a warm-up (its rising phase): set warmup_ratio or warmup_steps",
        )
        _check(self.effective_batch_size >= 1, f"{path}.effective_batch_size", "must be >= 1")
        _check(self.max_grad_norm >= 0, f"{path}.max_grad_norm", "must be >= 0 (0 = no clipping)")
        _check(0 <= self.label_smoothing < 1, f"{path}.label_smoothing", "must be in [0, 1)")
        _check(self.huber_delta > 0, f"{path}.huber_delta", "must be > 0")
        if isinstance(self.class_weights, dict):
            bad = {k: v for k, v in self.class_weights.items() if not v >= 0}
            _check(not bad, f"{path}.class_weights", f"must be >= 0 (got {bad})")
            _check(
                any(v > 0 for v in self.class_weights.values()),
                f"{path}.class_weights",
                "needs at least one weight > 0",
            )
        for key in ("eval_every_steps", "checkpoint_every_steps", "threads", "overfit_batches"):
            _check(getattr(self, key) >= 0, f"{path}.{key}", "must be >= 0")
        _check(self.keep_checkpoints >= 1, f"{path}.keep_checkpoints", "must be >= 1")
        _check(self.processes >= 1, f"{path}.processes", "must be >= 1")


@dataclass
class LrRangeParams:
    """The learning-rate range test (stage lr_range): an exponentially rising rate, one per step."""

    enabled: bool = True  # false: the stage writes outputs that say so and trains nothing
    min_lr: float = 1e-5
    max_lr: float = 1.0
    steps: int = 300  # optimizer steps (the effective batch of train); fewer if it diverges
    smoothing: float = 0.05  # weight of the newest loss in the moving average (1 = none)
    divergence: float = 4.0  # stop when the smoothed loss exceeds this multiple of its best
    suggestion: Literal["minimum", "steepest"] = "minimum"  # minimum: the lowest loss's lr / 10

    def validate(self, path: str) -> None:
        _check(self.min_lr > 0, f"{path}.min_lr", f"must be > 0 (got {self.min_lr:g})")
        _check(self.max_lr > self.min_lr, f"{path}.max_lr", f"must be > min_lr ({self.min_lr:g})")
        _check(self.steps >= 10, f"{path}.steps", "must be >= 10 (a curve needs points)")
        _check(0 < self.smoothing <= 1, f"{path}.smoothing", "must be in (0, 1]")
        _check(self.divergence > 1, f"{path}.divergence", "must be > 1")


@dataclass
class TfidfBaselineParams:
    """The TF-IDF + logistic regression baseline (scikit-learn)."""

    analyzer: Literal["word", "char_wb"] = "word"
    ngram_max: int = 2
    max_features: int = 50000
    c: float = 1.0  # inverse regularisation strength

    def validate(self, path: str) -> None:
        _check(self.ngram_max >= 1, f"{path}.ngram_max", "must be >= 1")
        _check(self.max_features >= 1, f"{path}.max_features", "must be >= 1")
        _check(self.c > 0, f"{path}.c", "must be > 0")


# Each task uses those that fit it: majority, stratified and tfidf_logreg (sequence),
# majority and word_majority (token), mean and tfidf_ridge (regression), no_answer and
# sentence_overlap (extractive QA), label_frequency, most_frequent_set and tfidf_logreg
# (multilabel).
EVALUATE_BASELINES = (
    *("majority", "stratified", "tfidf_logreg", "word_majority"),
    *("mean", "tfidf_ridge"),
    *("no_answer", "sentence_overlap"),
    *("label_frequency", "most_frequent_set"),
    *("position", "longest", "overlap"),  # multiple choice
)


@dataclass
class EvaluateParams:
    batch_size: int = 64
    # Seeded (global seed) bootstrap intervals of the main metrics; 0 = none.
    bootstrap_resamples: int = 1000
    confidence_level: float = 0.95
    # Binary tasks: positive when p(positive) >= threshold; with tune_threshold, the threshold
    # that maximises the positive class's F1 on validation is applied instead. Both reported.
    threshold: float = 0.5
    tune_threshold: bool = False
    # Multi-label tasks, with tune_threshold: one threshold for every label (maximising
    # micro-F1 on validation) or one per label (each label's F1).
    threshold_scope: Literal["global", "per_label"] = "global"
    # Binary tasks: "" = the second label name (sorted order). true/false are accepted for the
    # labels yes/no: `dvc exp run -S` rewrites params.yaml without quotes, and YAML 1.1 reads
    # an unquoted yes as true.
    positive_label: str = ""
    calibration_bins: int = 10
    # Each task runs those that fit it: sequence majority, stratified, tfidf_logreg; token
    # majority, word_majority; regression mean, tfidf_ridge; multi-label label_frequency,
    # most_frequent_set, tfidf_logreg; choice position, longest, overlap.
    baselines: list[str] = field(
        default_factory=lambda: [
            *("majority", "stratified", "tfidf_logreg", "word_majority"),
            *("mean", "tfidf_ridge"),
            *("no_answer", "sentence_overlap"),
            *("label_frequency", "most_frequent_set"),
            *("position", "longest", "overlap"),
        ]
    )
    tfidf: TfidfBaselineParams = field(default_factory=TfidfBaselineParams)
    # Token tasks: seqeval's default (conlleval, lenient) or strict entity reading.
    entity_mode: Literal["default", "strict"] = "default"
    entity_scheme: Literal["auto", "IOB1", "IOB2"] = "auto"  # strict mode's scheme
    # Validation inputs timed for metrics/latency.json (evaluate --latency); 0 = not measured.
    latency_examples: int = 64
    # Extractive QA: the best starts and ends per window whose spans are considered, and the
    # longest answer in tokens.
    n_best: int = 20
    max_answer_length: int = 30
    # Text-to-text tasks: how outputs are generated (greedy, beams, seeded sampling).
    generation: GenerationParams = field(default_factory=GenerationParams)

    def validate(self, path: str) -> None:
        _check(self.batch_size >= 1, f"{path}.batch_size", "must be >= 1")
        _check(self.n_best >= 1, f"{path}.n_best", "must be >= 1")
        _check(self.max_answer_length >= 1, f"{path}.max_answer_length", "must be >= 1")
        _check(self.latency_examples >= 0, f"{path}.latency_examples", "must be >= 0")
        _check(self.bootstrap_resamples >= 0, f"{path}.bootstrap_resamples", "must be >= 0")
        _check(0 < self.confidence_level < 1, f"{path}.confidence_level", "must be in (0, 1)")
        _check(0 < self.threshold < 1, f"{path}.threshold", "must be in (0, 1)")
        _check(self.calibration_bins >= 2, f"{path}.calibration_bins", "must be >= 2")
        for i, name in enumerate(self.baselines):
            close = difflib.get_close_matches(name, EVALUATE_BASELINES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            _check(
                name in EVALUATE_BASELINES,
                f"{path}.baselines[{i}]",
                f"'{name}' is not one of {list(EVALUATE_BASELINES)}{hint}",
            )


PERTURBATIONS = (
    "whitespace", "case", "lowercase", "typo", "punctuation",
    "substitute_char", "drop_char", "add_char", "append_text", "prepend_text",
)  # fmt: skip


@dataclass
class DirectionalParams:
    """A change that should move the probability of ``target`` one way."""

    name: str = ""
    perturbation: str = "substitute_char"
    fields: list[str] = field(default_factory=list)  # text fields to change; [] = all
    # Labels may come back from `dvc exp run -S` as true/false (an unquoted yes/no in YAML 1.1).
    only_label: str = ""  # apply to examples with this gold label only; "" = all
    target: str = ""  # the label whose probability should move; "" = the second label
    expect: Literal["increase", "decrease"] = "decrease"
    min_change: float = 0.0  # the probability must move by more than this, the right way
    text: str = ""  # the text of append_text / prepend_text

    def validate(self, path: str) -> None:
        _check(bool(self.name), f"{path}.name", "is required")
        _check(
            self.perturbation in PERTURBATIONS,
            f"{path}.perturbation",
            f"must be one of {list(PERTURBATIONS)}",
        )
        _check(0 <= self.min_change < 1, f"{path}.min_change", "must be in [0, 1)")
        _check(
            bool(self.text) or self.perturbation not in ("append_text", "prepend_text"),
            f"{path}.text",
            f"is required for {self.perturbation}",
        )


@dataclass
class BehaviourParams:
    """Behavioural tests (CheckList-style), run with the model on perturbed test inputs."""

    max_examples: int = 200  # test examples perturbed per test
    invariance: list[str] = field(default_factory=lambda: ["whitespace", "case"])
    invariance_fields: list[str] = field(default_factory=list)  # [] = every text field
    directional: list[DirectionalParams] = field(default_factory=list)
    templates: str = ""  # minimum-functionality cases (a YAML file); "" = none
    max_template_cases: int = 200  # per template, sampled with the seed when more

    def validate(self, path: str) -> None:
        _check(self.max_examples >= 1, f"{path}.max_examples", "must be >= 1")
        _check(self.max_template_cases >= 1, f"{path}.max_template_cases", "must be >= 1")
        for i, name in enumerate(self.invariance):
            _check(
                name in PERTURBATIONS,
                f"{path}.invariance[{i}]",
                f"'{name}' is not one of {list(PERTURBATIONS)}",
            )


@dataclass
class ErrorAnalysisParams:
    max_examples: int = 30
    # Upper edges of the input-length buckets (characters of all text fields; words for token
    # tasks); the last bucket is open. "auto": quartiles of the test split's lengths.
    length_buckets: list[int] | Literal["auto"] = field(default_factory=lambda: [20, 26])
    # A wrong prediction at least this confident is listed as a possible label error.
    label_error_confidence: float = 0.9
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)

    def validate(self, path: str) -> None:
        _check(self.max_examples >= 1, f"{path}.max_examples", "must be >= 1")
        _check(
            0.5 <= self.label_error_confidence < 1,
            f"{path}.label_error_confidence",
            "must be in [0.5, 1)",
        )
        edges = self.length_buckets
        if edges != "auto":
            _check(
                all(a < b for a, b in itertools.pairwise(edges)),
                f"{path}.length_buckets",
                "must be strictly increasing (or 'auto')",
            )


@dataclass
class TuneSpaceParams:
    """One searched parameter of ``nlpflow tune`` (the key is its params.yaml path)."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False  # sample (and judge the boundaries) on the log scale
    step: float | None = None  # a discretisation step; int parameters default to 1
    choices: list[str | bool | int | float] = field(default_factory=list)  # categorical
    grid: list[str | bool | int | float] = field(default_factory=list)  # values for sampler: grid

    def validate(self, path: str) -> None:
        if self.type == "categorical":
            _check(len(self.choices) >= 2, f"{path}.choices", "needs at least 2 values")
            _check(
                self.low is None and self.high is None and self.step is None and not self.log,
                path,
                "is categorical: give choices, not low/high/step/log",
            )
            bad = [v for v in self.grid if v not in self.choices]
            _check(not bad, f"{path}.grid", f"has values {bad} that are not in choices")
            return
        _check(not self.choices, f"{path}.choices", f"is for categorical parameters ({self.type})")
        _check(self.low is not None, f"{path}.low", f"is required for a {self.type} parameter")
        _check(self.high is not None, f"{path}.high", f"is required for a {self.type} parameter")
        assert self.low is not None and self.high is not None
        _check(self.low < self.high, f"{path}.high", f"must be > low ({self.low:g})")
        _check(not self.log or self.low > 0, f"{path}.low", "must be > 0 on a log scale")
        if self.step is not None:
            _check(self.step > 0, f"{path}.step", "must be > 0")
            _check(not self.log, f"{path}.step", "cannot be combined with log: true")
        if self.type == "int":
            for key in ("low", "high", "step"):
                value = getattr(self, key)
                _check(
                    value is None or float(value).is_integer(),
                    f"{path}.{key}",
                    f"must be a whole number for an int parameter (got {value})",
                )
        # YAML reads 1e-3 (no dot) as a string: take it as the number it obviously is.
        self.grid = [_number_or_self(v) for v in self.grid]
        for i, value in enumerate(self.grid):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            _check(ok, f"{path}.grid[{i}]", f"must be a number (got {value!r})")
            assert isinstance(value, int | float)
            _check(
                self.low <= value <= self.high,
                f"{path}.grid[{i}]",
                f"{value:g} is outside [low, high] = [{self.low:g}, {self.high:g}]",
            )


def _number_or_self(value: str | bool | int | float) -> str | bool | int | float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# Metrics counted in models/best rather than read from a metrics file.
MODEL_METRICS = ("model:parameters", "model:size_mb")
# Per-epoch validation metrics the train stage can report to a pruner, and their direction.
PRUNER_DIRECTIONS = {
    "f1_macro": "maximize",
    "accuracy": "maximize",
    "loss": "minimize",
    "exact_match": "maximize",  # text2text, with train.generation_sample
    # regression
    "rmse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
    "pearson": "maximize",
    "spearman": "maximize",
}


def tune_metric_problem(spec: str) -> str | None:
    """Why ``spec`` cannot be a tuning objective or constraint, or None when it can."""
    if spec in MODEL_METRICS:
        return None
    file, _, key = spec.partition(":")
    if not file or not key:
        return "must look like 'metrics/evaluate.json:validation.f1_macro'"
    if "test" in key.split(".") or "test" in Path(file).stem.split("_"):
        return (
            "reads the test split: choosing a configuration by test metrics leaks the test "
            "set into the choice; use validation metrics"
        )
    return None


def _check_tune_metric(spec: str, path: str) -> None:
    problem = tune_metric_problem(spec)
    _check(problem is None, path, f"{spec!r} {problem}")


@dataclass
class TuneObjectiveParams:
    """A value to optimise: ``<metrics file>:<key path>`` read from each trial's experiment,
    or ``model:parameters`` / ``model:size_mb`` (counted in models/best)."""

    metric: str = "metrics/evaluate.json:validation.f1_macro"
    direction: Literal["maximize", "minimize"] = "maximize"

    def validate(self, path: str) -> None:
        _check_tune_metric(self.metric, f"{path}.metric")


@dataclass
class TuneConstraintParams:
    """A floor (min) and/or ceiling (max) a trial must meet to count as feasible."""

    metric: str = ""
    min: float | None = None
    max: float | None = None

    def validate(self, path: str) -> None:
        _check_tune_metric(self.metric, f"{path}.metric")
        _check(self.min is not None or self.max is not None, path, "needs min, max or both")
        if self.min is not None and self.max is not None:
            _check(self.min <= self.max, f"{path}.max", f"must be >= min ({self.min:g})")


@dataclass
class TunePrunerParams:
    """Pruning of unpromising trials from the validation metric the train stage reports."""

    kind: Literal["median", "hyperband", "none"] = "median"
    # The per-epoch validation metric the train stage reports (val_<metric> in epochs.tsv).
    metric: Literal[
        "f1_macro", "accuracy", "loss", "rmse", "mae", "r2", "pearson", "spearman", "exact_match"
    ] = "f1_macro"
    startup_trials: int = 3  # median: finished trials before any pruning
    warmup_epochs: int = 1  # median: epochs every trial runs before it can be pruned
    min_epochs: int = 1  # hyperband: the smallest budget of a bracket
    reduction_factor: int = 3  # hyperband

    def validate(self, path: str) -> None:
        _check(self.startup_trials >= 0, f"{path}.startup_trials", "must be >= 0")
        _check(self.warmup_epochs >= 0, f"{path}.warmup_epochs", "must be >= 0")
        _check(self.min_epochs >= 1, f"{path}.min_epochs", "must be >= 1")
        _check(self.reduction_factor >= 2, f"{path}.reduction_factor", "must be >= 2")


@dataclass
class TuneParams:
    """``nlpflow tune``: an Optuna study whose trials are DVC experiments. Read by no stage."""

    study: str = "nlpflow"  # trials are the experiments <study>-<number>
    storage: str = ""  # "" = sqlite in tune/optuna.db; or any SQLAlchemy URL (PostgreSQL)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    sampler_seed: int | None = None  # None = the global seed
    n_trials: int = 8  # trials of the whole study, all workers together
    jobs: int = 1  # trials at a time in this worker
    objectives: list[TuneObjectiveParams] = field(default_factory=lambda: [TuneObjectiveParams()])
    constraints: list[TuneConstraintParams] = field(default_factory=list)
    pruner: TunePrunerParams = field(default_factory=TunePrunerParams)
    seeds: int = 0  # rerun the top configurations with this many seeds (0 = no reruns)
    top: int = 2  # how many configurations --seeds reruns
    # Tuning must use the training's own epoch budget; true lets train.epochs be searched.
    allow_epochs: bool = False
    space: dict[str, TuneSpaceParams] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        _check(
            bool(self.study) and all(c.isalnum() or c in "-_" for c in self.study),
            f"{path}.study",
            "must be letters, digits, '-' or '_' (it names DVC experiments)",
        )
        _check(self.n_trials >= 1, f"{path}.n_trials", "must be >= 1")
        _check(self.jobs >= 1, f"{path}.jobs", "must be >= 1")
        _check(len(self.objectives) >= 1, f"{path}.objectives", "needs at least one objective")
        _check(self.seeds == 0 or self.seeds >= 2, f"{path}.seeds", "must be 0 or >= 2")
        _check(self.top >= 1, f"{path}.top", "must be >= 1")
        # Optuna prunes single-objective studies only; there the two must move the same way.
        moves = PRUNER_DIRECTIONS[self.pruner.metric]
        objective = self.objectives[0].direction
        _check(
            self.pruner.kind == "none" or len(self.objectives) > 1 or objective == moves,
            f"{path}.pruner.metric",
            f"'{self.pruner.metric}' is one to {moves} but the objective is one to "
            f"{objective}: the pruner would stop the best trials; report a metric that moves "
            "the same way",
        )


@dataclass
class Params:
    seed: int = 42
    data: DataParams = field(default_factory=DataParams)
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    model: ModelParams = field(default_factory=ModelParams)
    probe: ProbeParams = field(default_factory=ProbeParams)
    train: TrainParams = field(default_factory=TrainParams)
    lr_range: LrRangeParams = field(default_factory=LrRangeParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    error_analysis: ErrorAnalysisParams = field(default_factory=ErrorAnalysisParams)
    tune: TuneParams = field(default_factory=TuneParams)

    def validate(self, path: str) -> None:
        _check(self.seed >= 0, "seed", "must be >= 0")


# --------------------------------------------------------------------------- loading


def _check(ok: bool, key: str, rule: str) -> None:
    if not ok:
        raise ParamsError(f"params.yaml: {key} {rule}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in that type."""
    origin = get_origin(tp)
    bad = ParamsError(f"params.yaml: {path} must be {_type_name(tp)} (got {value!r})")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise bad
        return _build(tp, value, path)
    if origin is Literal:
        if value not in get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _convert(value, arg, path)
            except ParamsError:
                continue
        raise bad
    if tp is type(None):
        if value is not None:
            raise bad
        return None
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item,) = get_args(tp)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        _, item = get_args(tp)
        return {str(k): _convert(v, item, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        # YAML reads "1e-3" (no dot) as a string; accept it as the number it obviously is.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a bug in this module


def _build(cls: type, raw: dict[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            full = f"{path}.{key}" if path else str(key)
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
            raise ParamsError(f"params.yaml: unknown key '{full}'{hint}")
    kwargs = {
        name: _convert(raw[name], hints[name], f"{path}.{name}" if path else name)
        for name in names
        if name in raw
    }
    obj = cls(**kwargs)
    obj.validate(path)
    return obj


def parse_params(raw: dict[str, Any]) -> Params:
    """Validate a params mapping (as read from YAML) into :class:`Params`."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: the top level must be a mapping of sections")
    params: Params = _build(Params, raw, "")
    return params


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads yes/no/on/off as booleans, and
    `dvc exp run -S` writes values unquoted, so a label named "yes" would turn into True."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_yaml(text: str | bytes) -> Any:
    """Parse YAML the way DVC and YAML 1.2 read it (``yes`` stays a string)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: safe


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raise :class:`ParamsError` with one clear line."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run from the project root or pass --params")
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"{path}: not valid YAML{where}: {err}") from None
    return parse_params(raw)


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a params dataclass, for hashing and for writing next to outputs."""
    return dataclasses.asdict(obj)
