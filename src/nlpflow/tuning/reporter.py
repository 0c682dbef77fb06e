"""The train stage's side of pruning: report each epoch's validation metric to the trial.

``nlpflow tune`` runs each trial as ``dvc exp run --temp -n <study>-<number> ...`` with these
variables in the environment, which DVC passes on to every stage it runs::

    NLPFLOW_TUNE_STORAGE   the study's storage URL (absolute: the stage runs in a temp dir)
    NLPFLOW_TUNE_STUDY     the study name
    NLPFLOW_TUNE_TRIAL     the trial number
    NLPFLOW_TUNE_EXP       the experiment name the tuner gave the trial

and DVC itself sets ``DVC_EXP_NAME`` for the stages of an experiment. The reporter is active
only when ``DVC_EXP_NAME`` equals ``NLPFLOW_TUNE_EXP``: variables left in a shell, or a plain
``dvc repro``/``dvc exp run`` started from a tuning worker's environment, never report into
(and never prune) a trial.

Why the environment and not a parameter: the trial's identity must not be a param the train
stage lists. It would change the stage's params, so two trials with the same configuration
could never share a result, ``dvc exp apply`` of the best would carry a trial number into
params.yaml, and the seed reruns of a configuration would differ from it by more than the
seed. Reporting does not change what is trained, except that a pruned run stops early; that
run says so in its own outputs (``metrics/train.json``: ``"stop_reason": "pruned"``,
``"pruned": 1``), and DVC's run cache never stores the train stage (its ``checkpoints``
output is uncached), so a pruned result cannot be restored for a later, unpruned run.

Usage in the train stage::

    reporter = TrialReporter.from_env(log=log)
    ...after each validation (evaluation number n, 1-based):
    if reporter is not None and reporter.report(n, val[reporter.metric]):
        stop_reason, stop_detail = "pruned", reporter.detail
    ...and in metrics/train.json: "pruned": 0 or 1, plus reporter.summary() (trial, study)

Tuning must never break training: a storage that cannot be reached, or a trial that is no
longer running, is logged once and training goes on (or, for a finished trial, stops).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

ENV_STORAGE = "NLPFLOW_TUNE_STORAGE"
ENV_STUDY = "NLPFLOW_TUNE_STUDY"
ENV_TRIAL = "NLPFLOW_TUNE_TRIAL"
ENV_EXP = "NLPFLOW_TUNE_EXP"
DVC_EXP_NAME = "DVC_EXP_NAME"


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def trial_environment(storage: str, study: str, number: int, exp_name: str) -> dict[str, str]:
    """The variables ``nlpflow tune`` sets for the ``dvc exp run`` of one trial."""
    return {ENV_STORAGE: storage, ENV_STUDY: study, ENV_TRIAL: str(number), ENV_EXP: exp_name}


class TrialReporter:
    """Reports intermediate validation values of one trial and asks the pruner about it."""

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        trial_number: int,
        *,
        log: Callable[[str], None] = _log,
    ) -> None:
        import optuna

        from nlpflow.tuning.config import StudyConfig, build_pruner
        from nlpflow.tuning.storage import open_storage, quiet_optuna

        self.study_name = study_name
        self.trial_number = trial_number
        self._log = log
        self._failed = False
        self.detail = ""
        self._storage = open_storage(storage_url, heartbeat=False)
        with quiet_optuna():
            study = optuna.load_study(study_name=study_name, storage=self._storage)
        config = StudyConfig.of_study(study)
        if config is None:
            raise ValueError(f"study {study_name!r} was not created by nlpflow tune")
        self.config = config
        self.metric: str = str(config.pruner.get("metric", "f1_macro"))
        self.study = study
        self.pruner = build_pruner(config)
        study_id = self._storage.get_study_id_from_name(study_name)
        self._trial_id = self._storage.get_trial_id_from_study_id_trial_number(
            study_id, trial_number
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, log: Callable[[str], None] = _log
    ) -> TrialReporter | None:
        """The reporter of the trial this process belongs to, or None outside a trial."""
        env = os.environ if environ is None else environ
        names = (ENV_STORAGE, ENV_STUDY, ENV_TRIAL, ENV_EXP)
        if not any(env.get(n) for n in names):
            return None
        missing = [n for n in names if not env.get(n)]
        if missing:
            log(f"tune: incomplete trial environment (missing {', '.join(missing)}); not reporting")
            return None
        exp = env[ENV_EXP]
        if env.get(DVC_EXP_NAME) != exp:
            log(
                f"tune: {ENV_EXP}={exp} but this is not that DVC experiment "
                f"({DVC_EXP_NAME}={env.get(DVC_EXP_NAME) or 'unset'}); not reporting"
            )
            return None
        try:
            number = int(env[ENV_TRIAL])
            return cls(env[ENV_STORAGE], env[ENV_STUDY], number, log=log)
        except Exception as err:  # tuning must never break training
            log(f"tune: cannot reach trial {env.get(ENV_TRIAL)} of study {env[ENV_STUDY]}: {err}")
            return None

    @property
    def pruning(self) -> bool:
        return self.config.pruning

    def report(self, epoch: int, value: float, ask: bool = True) -> bool:
        """Record ``value`` (the validation metric named :attr:`metric`) at evaluation
        ``epoch`` (1-based: one evaluation per epoch unless ``train.eval_every_steps``).

        Returns True when the trial should stop now: the pruner judged it unpromising, or the
        trial is no longer running (its worker gave it up). ``ask=False`` only records (the
        run's last evaluation: nothing is left to prune). Reports nothing for
        multi-objective studies (Optuna prunes single-objective studies only).
        """
        import optuna

        if self._failed or not self.pruning:
            return False
        try:
            frozen = self._storage.get_trial(self._trial_id)
            if frozen.state != optuna.trial.TrialState.RUNNING:
                self.detail = (
                    f"trial {self.trial_number} is {frozen.state.name.lower()} in the study"
                )
                self._log(f"tune: {self.detail}; stopping")
                return True
            if epoch not in frozen.intermediate_values:  # a resumed run repeats epochs
                self._storage.set_trial_intermediate_value(self._trial_id, epoch, float(value))
            if not ask:
                return False
            # What Trial.should_prune does, for a trial another process (the worker) owns:
            # the study's pruner judges the trial as stored.
            prune = bool(self.pruner.prune(self.study, self._storage.get_trial(self._trial_id)))
        except Exception as err:  # tuning must never break training
            self._failed = True
            self._log(f"tune: reporting failed ({type(err).__name__}: {err}); training goes on")
            return False
        if prune:
            self.detail = (
                f"pruned by the {self.config.pruner.get('kind')} pruner of study "
                f"{self.study_name} at epoch {epoch} (val {self.metric} {value:.4f})"
            )
            self._log(f"tune: {self.detail}")
        return prune

    def summary(self) -> dict[str, Any]:
        """Keys the train stage may add to metrics/train.json."""
        return {"trial": self.trial_number, "study": self.study_name}
