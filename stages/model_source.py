"""Stage model_source: a fingerprint of the pretrained model (model.name_or_path).

    python -m stages.model_source --out data/model_source.json

Runs on every ``dvc repro`` (``always_changed``); the stages that load the model depend on
its output, so they rerun when the model directory's files change and only then.
"""

from __future__ import annotations

from nlpflow.contracts import ModelSourceInputs
from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_json
from nlpflow.params import load_params
from stages import stage_parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("model_source", __doc__)
    parser.add_argument("--out", default="data/model_source.json", help="the fingerprint (JSON)")
    args = parser.parse_args(argv)
    inputs = ModelSourceInputs.from_params(load_params(args.params))

    from nlpflow.modeling.source import model_fingerprint

    write_json(args.out, model_fingerprint(inputs.model.name_or_path))


if __name__ == "__main__":
    main()
