"""Hyperparameter search where every trial is a DVC experiment (``nlpflow tune``).

- :mod:`~nlpflow.tuning.space`: the search space in params.yaml, its rules, boundary warnings
- :mod:`~nlpflow.tuning.study`: the worker (trials in threads, shared storage, resume)
- :mod:`~nlpflow.tuning.runner` / :mod:`~nlpflow.tuning.experiments`: ``dvc exp run`` per trial
- :mod:`~nlpflow.tuning.reporter`: the train stage's side of pruning (``TrialReporter``)
- :mod:`~nlpflow.tuning.storage`: the Optuna storage (SQLite or any SQLAlchemy URL)
- :mod:`~nlpflow.tuning.analysis` / :mod:`~nlpflow.tuning.report`: reports/tune.md

See docs/tuning.md.
"""
