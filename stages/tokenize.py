"""Stage tokenize: train or load the tokenizer, encode every split, report what it did."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator

from nlpflow.contracts import TokenizeInputs
from nlpflow.errors import exit_on_user_error
from nlpflow.io import atomic_dir, write_json, write_text
from nlpflow.params import load_params
from stages import stage_parser

SPLITS = ("train", "validation", "test")  # what preprocess writes
# Models built from a config get position embeddings for this many tokens at most.
BUILT_MODEL_LIMIT = 512


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("tokenize", __doc__)
    parser.add_argument("--data", default="data/processed", help="processed splits (preprocess)")
    parser.add_argument("--out", default="data/tokenized", help="directory for tokenized splits")
    parser.add_argument("--tokenizer-out", default="models/tokenizer", help="tokenizer directory")
    parser.add_argument("--metrics", default="metrics/tokenize.json", help="token figures (JSON)")
    parser.add_argument("--report", default="reports/tokenization.md", help="readable sample")
    args = parser.parse_args(argv)

    params = TokenizeInputs.from_params(load_params(args.params))
    tok_params = params.tokenizer
    from nlpflow.data.saved import in_memory, read_processed, write_saved, write_saved_tables
    from nlpflow.data.tokenize import (
        auto_max_length,
        describe_tokens,
        encode_splits,
        tokenization_sample,
        tokenize_with_stats,
        training_texts,
    )
    from nlpflow.families.data import data_family
    from nlpflow.logs import quiet_libraries
    from nlpflow.modeling.build import load_config, pretrained_limit
    from nlpflow.modeling.encoder import Encoder, add_prefix_space, takes_segments
    from nlpflow.modeling.tokenizers import (
        ensure_pad_token,
        load_tokenizer,
        sample_positions,
        train_tokenizer,
    )

    quiet_libraries()
    # A missing or malformed data/processed is one clear line (exit 2), not a traceback.
    dataset, meta = read_processed(args.data, list(SPLITS))
    family = data_family(meta.task)
    own = family.tokenize(dataset, meta, params)
    if own is not None:  # a family with examples of its own shape (text-to-text)
        with atomic_dir(args.tokenizer_out) as tmp:
            own.tokenizer.save_pretrained(str(tmp))
        write_saved(args.out, own.data, own.meta)
        write_json(args.metrics, own.report)
        write_text(args.report, own.sample)
        for note in own.notes:
            print(f"tokenize: {note}")
        for line in own.report["warnings"]:
            print(f"warning: tokenize: {line}", file=sys.stderr)
        print(f"{own.summary} -> {args.out}")
        return
    task: str = family.encoder_mode  # how the Encoder reads a row: texts, or pre-split words
    text_fields: list[str] = meta.text_fields
    config = None
    pad_added, prefix_added = None, False
    if params.model.name_or_path:
        tokenizer = load_tokenizer(params.model.name_or_path, params.model.trust_remote_code)
        config = load_config(params.model.name_or_path, params.model.trust_remote_code)
        pad_added = ensure_pad_token(tokenizer)  # GPT-2 has none: its end-of-text token pads
        limit = pretrained_limit(tokenizer, config)
        if task == "token":
            # Byte-level BPE (RoBERTa, GPT-2) reads pre-split words as inside a sentence.
            prefix_added = add_prefix_space(tokenizer)
    else:
        n_texts = len(dataset["train"]) * len(text_fields)
        tokenizer = train_tokenizer(
            training_texts(dataset, text_fields),
            tok_params.kind,
            tok_params.vocab_size,
            tok_params.lowercase,
            model_max_length=BUILT_MODEL_LIMIT,
            sample=sample_positions(n_texts, tok_params.train_sample, params.seed),
        )
        limit = BUILT_MODEL_LIMIT
    segments = takes_segments(tokenizer, config)
    known_full = None  # untruncated lengths already measured
    if tok_params.max_length == "auto":
        probe = Encoder(tokenizer, text_fields, limit, "longest_first", task, segments)
        max_length, train_full = auto_max_length(
            dataset, probe, tok_params.auto_percentile, limit, family
        )
        if len(train_full) == len(dataset["train"]):  # one sequence a row
            known_full = {"train": train_full}
    else:
        max_length = min(tok_params.max_length, limit)
    windows = family.encode_splits(dataset, tokenizer, max_length, tok_params, args.data, segments)
    out_meta = meta.tokenized(max_length, tok_params.truncation)
    if windows is not None:  # a family with its own rows (QA: windows of each question)
        tokenized, figures, sample = windows
        report = {"vocab_size": len(tokenizer), "max_length": max_length, **figures}
        # prediction splits new contexts with the same stride
        out_meta = dataclasses.replace(out_meta, stride=tok_params.stride)
        write_saved(args.out, tokenized, out_meta)
    elif tok_params.num_proc > 1:
        encoder = Encoder(tokenizer, text_fields, max_length, tok_params.truncation, task, segments)
        tokenized, stats = tokenize_with_stats(
            dataset, encoder, tokenizer, tok_params.num_proc, args.data, family, known_full
        )
        write_saved(args.out, tokenized, out_meta)
        report = describe_tokens(stats, tokenizer, max_length)
    else:
        # batch by batch from data/processed to data/tokenized (published when complete)
        encoder = Encoder(tokenizer, text_fields, max_length, tok_params.truncation, task, segments)
        features, streams, split_stats = encode_splits(
            dataset, encoder, tokenizer, args.data, known_full, family
        )
        first: list = []  # train's first batch, for the sample (reading the output back
        # through a memory map would make a part of it resident)

        def keep_first(tables: Iterator) -> Iterator:
            for table in tables:
                if not first:
                    first.append(table)
                yield table

        features_of, train = streams["train"]
        streams["train"] = (features_of, keep_first(train))
        write_saved_tables(args.out, streams, out_meta)
        stats = {split: s.figures(max_length) for split, s in split_stats.items()}
        tokenized = in_memory(
            {"train": first[0] if first else features.arrow_schema.empty_table()}, features
        )
        report = describe_tokens(stats, tokenizer, max_length)
    # What this model family needed, found from its model and tokenizer (not assumed).
    report["model"] = {
        "position_limit": limit,
        "segment_ids": segments,
        "pad_token_added": pad_added is not None,
        "prefix_space_added": prefix_added,
    }
    if windows is None:
        sample = tokenization_sample(
            dataset, tokenized, tokenizer, text_fields, task=task, warnings=report["warnings"]
        )

    with atomic_dir(args.tokenizer_out) as tmp:
        tokenizer.save_pretrained(str(tmp))
    write_json(args.metrics, report)
    write_text(args.report, sample)
    if pad_added is not None:
        print(f"tokenize: the tokenizer has no padding token; padding with {pad_added!r}")
    if prefix_added:
        print("tokenize: byte-level tokenizer given add_prefix_space for pre-split words")
    for line in report["warnings"]:
        print(f"warning: tokenize: {line}", file=sys.stderr)
    train = report["splits"]["train"]
    print(
        f"tokenize: vocabulary {report['vocab_size']}, max_length {max_length}, train length "
        f"p95 {train['length_p95']}, truncated {100 * train['truncated_fraction']:.1f}% -> {args.out}"
    )


if __name__ == "__main__":
    main()
