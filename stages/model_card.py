"""Stage model_card: ``models/best/README.md``, the model card in the Hugging Face format.

    python -m stages.model_card --model models/best --evaluate metrics/evaluate.json \\
        --error-analysis metrics/error_analysis.json --data-card metrics/preprocess.json \\
        --out models/best/README.md

Reads params (``nlpflow.contracts.ModelCardInputs``): seed, data, tokenizer, model, train,
evaluate, shown in the card. The model's task, labels and fields come from
``models/best/nlpflow.json`` (written by train). DVC forbids one output inside another, so
train lists the model's files one by one (``nlpflow.modelinfo.MODEL_FILES``) and this stage
owns ``README.md`` beside them; a rerun of train removes the card until this stage runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nlpflow.card import CardInputs, read_metrics, render_card
from nlpflow.contracts import ModelCardInputs
from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_text
from nlpflow.modelinfo import read_model_info
from nlpflow.params import load_params
from stages import stage_parser


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser("model_card", __doc__)
    parser.add_argument("--model", default="models/best", help="the trained model directory")
    parser.add_argument("--evaluate", default="metrics/evaluate.json", help="evaluate's metrics")
    parser.add_argument(
        "--error-analysis",
        default="metrics/error_analysis.json",
        help="error_analysis's metrics (weakest slice, behavioural tests)",
    )
    parser.add_argument(
        "--data-card", default="metrics/preprocess.json", help="preprocess's data figures"
    )
    parser.add_argument("--out", default="models/best/README.md", help="the card")
    args = parser.parse_args(argv)
    params = ModelCardInputs.from_params(load_params(args.params))

    inputs = CardInputs(
        meta=read_model_info(args.model),
        evaluate=read_metrics(args.evaluate, "evaluate"),
        error_analysis=read_metrics(args.error_analysis, "error_analysis"),
        data=read_metrics(args.data_card, "preprocess"),
        params=params.as_dict(),
    )
    text = render_card(inputs)
    write_text(Path(args.out), text)
    print(f"model_card: {args.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
