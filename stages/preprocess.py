"""Stage preprocess: load the data source, clean, split, check for leakage, describe it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from nlpflow.contracts import PreprocessInputs
from nlpflow.errors import exit_on_user_error
from nlpflow.io import write_json
from nlpflow.params import load_params
from stages import stage_parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("preprocess", __doc__)
    parser.add_argument("--out", default="data/processed", help="directory for the Arrow splits")
    parser.add_argument("--metrics", default="metrics/preprocess.json", help="data figures (JSON)")
    parser.add_argument("--plots", default="plots/data", help="length and label plots")
    parser.add_argument("--report", default="reports/data.md", help="the data card (markdown)")
    args = parser.parse_args(argv)

    params = PreprocessInputs.from_params(load_params(args.params))
    from nlpflow.data.prepare import load_splits, write_processed
    from nlpflow.data.report import describe, write_report
    from nlpflow.logs import quiet_libraries

    quiet_libraries(transformers=False)  # preprocess does not use it
    # Every check runs before anything is written: a bad input leaves old outputs alone.
    # The rows wait on disk between the passes (data.prepare), so memory stays flat.
    data = load_splits(params.data, params.seed)
    # The cleaning goes with the data (if the family cleans its texts): predict repeats it.
    cleaning = asdict(params.data.cleaning) if data.cleaning else None
    # written first: streamed data's vocabulary is counted meanwhile, for the data card
    write_processed(args.out, data, cleaning)
    report = describe(data)
    write_json(args.metrics, report)
    write_report(data, report, params.seed, Path(args.plots), Path(args.report))

    rows = {s: v["rows"] for s, v in report["splits"].items()}
    print(
        f"preprocess: {data.task} task, rows {rows}, {len(data.label_names)} labels -> {args.out}"
    )
    if report["imbalance_ratio"] is not None and report["imbalance_ratio"] >= 3:
        print(
            f"preprocess: classes are imbalanced (ratio {report['imbalance_ratio']}); "
            "look at macro-F1, not accuracy alone"
        )
    if data.leakage.total:
        print(
            f"preprocess: warning: {data.leakage.total} text(s) shared between splits "
            f"{data.leakage.counts} (data.leakage: {params.data.leakage}); see {args.report}"
        )
    for warning in data.warnings:
        print(f"preprocess: warning: {warning}")
    for note in data.bad_rows.notes:
        print(f"preprocess: {note}")
    if data.bad_rows.rows:
        print(f"preprocess: skipped {len(data.bad_rows.rows)} bad row(s); see {args.report}")


if __name__ == "__main__":
    main()
