"""Stage tokenize: train or load the tokenizer, encode every split, report what it did."""

from __future__ import annotations

import argparse
from pathlib import Path

from nlpflow.errors import exit_on_user_error
from nlpflow.io import atomic_dir, read_json, write_json, write_text
from nlpflow.params import load_params


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--data", default="data/processed", help="processed splits (preprocess)")
    parser.add_argument("--out", default="data/tokenized", help="directory for tokenized splits")
    parser.add_argument("--tokenizer-out", default="models/tokenizer", help="tokenizer directory")
    parser.add_argument("--metrics", default="metrics/tokenize.json", help="token figures (JSON)")
    parser.add_argument("--report", default="reports/tokenization.md", help="readable sample")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    from datasets import load_from_disk

    from nlpflow.data.tokenize import (
        describe_tokens,
        tokenization_sample,
        tokenize_splits,
        training_texts,
    )
    from nlpflow.logs import quiet_libraries
    from nlpflow.modeling.tokenizers import load_tokenizer, train_tokenizer

    quiet_libraries()
    meta = read_json(Path(args.data) / "meta.json")
    dataset = load_from_disk(args.data)
    text_fields: list[str] = meta["text_fields"]
    max_length = params.tokenizer.max_length
    if params.model.name_or_path:
        tokenizer = load_tokenizer(params.model.name_or_path, params.model.trust_remote_code)
        # A pretrained model cannot read past its position embeddings.
        max_length = min(max_length, int(tokenizer.model_max_length))
    else:
        texts = (t for batch in training_texts(dataset, text_fields) for t in batch)
        tokenizer = train_tokenizer(
            texts, params.tokenizer.kind, params.tokenizer.vocab_size,
            params.tokenizer.lowercase, model_max_length=max_length,
        )
    tokenized = tokenize_splits(dataset, tokenizer, text_fields, max_length)

    with atomic_dir(args.tokenizer_out) as tmp:
        tokenizer.save_pretrained(str(tmp))
    with atomic_dir(args.out) as tmp:
        tokenized.save_to_disk(str(tmp))
    report = describe_tokens(dataset, tokenized, tokenizer, text_fields, max_length)
    write_json(args.metrics, report)
    write_text(args.report, tokenization_sample(dataset, tokenized, tokenizer, text_fields))
    print(
        f"tokenize: vocabulary {report['vocab_size']}, max_length {max_length}, "
        f"train p95 length {report['splits']['train']['length_p95']} -> {args.out}"
    )


if __name__ == "__main__":
    main()
