"""The tokenize stage for text-to-text data: the tokenizer, prompt and target ids per split,
input and target length statistics with truncation rates, and a readable sample.

Data side: imports no training or evaluation code. Columns written per split: ``id`` and
what training reads (:func:`~.encoding.training_row`): ``input_ids``, ``labels``,
``length``, and ``prompt_length`` (decoder-only) or ``decoder_input_ids`` (encoder-decoder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nlpflow.data.saved import LABEL_COLUMN, DataMeta
from nlpflow.families.data import TokenizedData
from nlpflow.families.text2text.params import Text2TextModelParams

if TYPE_CHECKING:
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerFast

    from nlpflow.params import TokenizerParams

SPLITS = ("train", "validation", "test")
SAMPLE_EXAMPLES = 5
# A truncation rate above this is a warning on the console and in the report.
TRUNCATION_WARNING = 0.01


def tokenize_text2text(
    dataset: DatasetDict,
    meta: DataMeta,
    tokenizer_params: TokenizerParams,
    name_or_path: str,
    trust_remote_code: bool,
    t2t: Text2TextModelParams,
) -> TokenizedData:
    """Tokenizer (pretrained from ``name_or_path``, else trained on the train inputs, targets
    and the template with ``tokenizer.kind``/``vocab_size``/``lowercase``), then every split
    encoded. Raises UserError for a tokenizer the model kind cannot use."""
    from datasets import Dataset, DatasetDict, Features, Sequence, Value

    from nlpflow.families.text2text.encoding import (
        Text2TextEncoder,
        prepare_tokenizer,
        train_text2text_tokenizer,
        training_row,
    )
    from nlpflow.modeling.tokenizers import load_tokenizer

    field_ = meta.text_fields[0]
    train = dataset["train"]
    notes: list[str] = []
    decoder_start = None
    if name_or_path:
        from nlpflow.modeling.build import load_config

        tokenizer = load_tokenizer(name_or_path, trust_remote_code)
        notes += prepare_tokenizer(tokenizer, t2t.kind)
        decoder_start = getattr(
            load_config(name_or_path, trust_remote_code), "decoder_start_token_id", None
        )
    else:
        texts = [*train[field_], *train[LABEL_COLUMN], t2t.prompt_template]
        tokenizer = train_text2text_tokenizer(
            texts, tokenizer_params.kind, tokenizer_params.vocab_size, tokenizer_params.lowercase
        )
    if decoder_start is None:  # T5 and the tiny model start decoding at padding
        decoder_start = tokenizer.pad_token_id
    ids = Sequence(Value("int32"))
    columns = {"id": Value("string"), "input_ids": ids, "labels": ids, "length": Value("int32")}
    if t2t.kind == "causal":
        columns["prompt_length"] = Value("int32")
    else:
        columns["decoder_input_ids"] = ids
    features = Features(columns)
    out, stats = {}, {}
    for split in SPLITS:
        rows = dataset[split]
        encoder = Text2TextEncoder(tokenizer, t2t)
        examples = encoder.encode(rows[field_], rows[LABEL_COLUMN])
        built = [training_row(e, t2t.kind, decoder_start) for e in examples]
        data_columns = {
            "id": rows["id"],
            **{c: [r[c] for r in built] for c in columns if c != "id"},
        }
        out[split] = Dataset.from_dict(data_columns, features=features)
        stats[split] = encoder.stats.summary()
    warnings = []
    for split, s in stats.items():
        for what in ("input", "target"):
            rate = s[f"{what}_truncation_rate"]
            if rate > TRUNCATION_WARNING:
                limit = t2t.max_input_length if what == "input" else t2t.max_target_length
                warnings.append(
                    f"{split}: {100 * rate:.1f}% of {what}s are longer than "
                    f"model.text2text.max_{what}_length ({limit} tokens) and were cut"
                )
    report = {
        "task": "text2text",
        "kind": t2t.kind,
        "vocab_size": len(tokenizer),
        "max_input_length": t2t.max_input_length,
        "max_target_length": t2t.max_target_length,
        "prompt_template": t2t.prompt_template,
        "splits": stats,
        "warnings": warnings,
        "model": {"pad_token_added": any("padding" in n for n in notes)},
    }
    data = DatasetDict(out)
    sample = _sample(dataset, data, tokenizer, field_, t2t, warnings)
    tokenized_meta = meta.tokenized(t2t.max_input_length, "only_first")
    s = stats["train"]
    summary = (
        f"tokenize: {t2t.kind}, vocabulary {len(tokenizer)}, train inputs p90 "
        f"{s['input_tokens']['p90']:g} tokens ({100 * s['input_truncation_rate']:.1f}% cut), "
        f"targets p90 {s['target_tokens']['p90']:g} ({100 * s['target_truncation_rate']:.1f}% cut)"
    )
    return TokenizedData(tokenizer, data, tokenized_meta, report, sample, notes, summary)


def _sample(
    dataset: DatasetDict,
    data: DatasetDict,
    tokenizer: PreTrainedTokenizerFast,
    field_: str,
    t2t: Text2TextModelParams,
    warnings: list[str],
) -> str:
    """A markdown page: a few train examples' prompt and target token by token."""
    lines = ["# Tokenization sample", ""]
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    reads = (
        "the decoder reads the prompt, then learns to write the target (loss on the target only)"
        if t2t.kind == "causal"
        else "the encoder reads the prompt; the decoder learns to write the target"
    )
    lines += [
        f"Tokenizer: `{type(tokenizer).__name__}`, vocabulary {len(tokenizer)} tokens. "
        f"Model kind `{t2t.kind}`: {reads}. Prompt template: `{t2t.prompt_template}`. "
        "`·` between tokens.",
        "",
    ]
    train, enc = dataset["train"], data["train"]
    for i in range(min(SAMPLE_EXAMPLES, len(train))):
        row = enc[i]
        if t2t.kind == "causal":
            cut = row["prompt_length"]
            prompt_ids, target_ids = row["input_ids"][:cut], row["input_ids"][cut:]
        else:
            prompt_ids, target_ids = row["input_ids"], row["labels"]
        prompt = tokenizer.convert_ids_to_tokens(prompt_ids)
        target = tokenizer.convert_ids_to_tokens(target_ids)
        lines += [
            f"## Example {i + 1}: `{train[i]['id']}`",
            "",
            f"- input: {train[i][field_]!r}",
            f"- target: {train[i][LABEL_COLUMN]!r}",
            f"- prompt, {len(prompt)} tokens: `{' · '.join(prompt)}`",
            f"- target, {len(target)} tokens: `{' · '.join(target)}`",
            "",
        ]
    return "\n".join(lines)
