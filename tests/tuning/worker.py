"""A tuning worker with the fake runner, run as a separate process by the storage tests
(``python -m tests.tuning.worker WORKDIR STORAGE JSON_TUNE_OVERRIDES [SECONDS] [hang]``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nlpflow.tuning.study import Interrupted, Tuner
from tests.tuning.fakes import FakeRunner, request


def main(argv: list[str]) -> int:
    workdir, storage, overrides = Path(argv[0]), argv[1], json.loads(argv[2])
    seconds = float(argv[3]) if len(argv) > 3 else 0.0
    hang = len(argv) > 4 and argv[4] == "hang"
    runner = FakeRunner(workdir, seconds, hang_after_result=hang)
    tuner = Tuner(request(workdir, storage, **overrides), runner=runner)
    try:
        tuner.optimize()
    except Interrupted:
        return 130
    print(json.dumps({"requeued": tuner.report.requeued, "recovered": tuner.report.recovered}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
