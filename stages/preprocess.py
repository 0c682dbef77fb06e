"""Stage preprocess: load the data source, split it, map labels, describe it."""

from __future__ import annotations

import argparse

from nlpflow.errors import exit_on_user_error
from nlpflow.io import atomic_dir, write_json
from nlpflow.params import load_params


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--out", default="data/processed", help="directory for the Arrow splits")
    parser.add_argument("--metrics", default="metrics/preprocess.json", help="data figures (JSON)")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    from nlpflow.data.prepare import describe, load_splits, to_dataset_dict
    from nlpflow.logs import quiet_libraries

    quiet_libraries()
    data = load_splits(params.data, params.seed)
    report = describe(data)
    dataset = to_dataset_dict(data)
    with atomic_dir(args.out) as tmp:
        dataset.save_to_disk(str(tmp))
        write_json(tmp / "meta.json", data.meta())
    write_json(args.metrics, report)
    rows = {s: v["rows"] for s, v in report["splits"].items()}
    print(f"preprocess: {rows} rows, labels {data.label_names} -> {args.out}")


if __name__ == "__main__":
    main()
