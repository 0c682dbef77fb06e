"""``nlpflow tune``: an Optuna study whose every trial is a DVC experiment.

One worker (one ``nlpflow tune`` process) runs ``jobs`` trials at a time in threads; each
trial is a ``dvc exp run --temp`` subprocess. Workers on the same or other machines join the
study by pointing at the same storage with the same study name. The rules that keep a shared
study honest:

- **Budget.** ``n_trials`` is the size of the whole study, all workers together: its
  complete, pruned and running trials (Optuna's ``MaxTrialsCallback``). A worker attempts at
  most the results missing when it starts, so failed trials leave the study short and the
  same command fills it up later; a worker stops early after ``MAX_FAILURES_IN_A_ROW``
  failures in a row. A grid study runs every combination once.
- **Claims.** Queued trials (grid combinations, seed reruns, re-queued configurations) are
  claimed with an atomic WAITING -> RUNNING update (Optuna's own in ``study.ask``, ours in
  :meth:`Tuner._claim`; see :mod:`nlpflow.tuning.storage` for SQLite): none runs twice.
- **Lost workers.** Every running trial has Optuna's RDB heartbeat. When a worker dies, its
  trials are failed and their configurations re-queued (Optuna's
  ``RetryHeartbeatStaleTrialCallback``) by the next worker that looks: at once when the dead
  worker was on this machine (its pid is gone), after ``GRACE_SECONDS`` without a heartbeat
  otherwise. If the dead worker's experiment had in fact finished, its result is recovered
  instead of rerun.
- **Interruption.** Ctrl-C (or SIGTERM) stops the running experiments, fails their trials and
  re-queues them; the same command later resumes the study where it stopped.
- **Same study, same rules.** The objectives, constraints, pruner, space, epoch budget and
  baseline commit are stored with the study; a worker whose settings differ is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError
from nlpflow.params import Params, TuneParams, as_dict
from nlpflow.revisions import head_commit
from nlpflow.tuning import experiments as ex
from nlpflow.tuning.config import (
    CONFIG_ATTR,
    SEEDS_SUFFIX,
    StudyConfig,
    build_pruner,
    short_number,
)
from nlpflow.tuning.reporter import trial_environment
from nlpflow.tuning.runner import DvcRunner, Runner, TrialResult
from nlpflow.tuning.space import SearchSpace, Value, build_space, set_override
from nlpflow.tuning.storage import (
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    open_storage,
    process_alive,
    quiet_optuna,
    resolve_url,
    retry_history,
    retry_of,
    safe_url,
    worker_identity,
)

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


MAX_FAILURES_IN_A_ROW = 3  # a worker whose trials keep failing stops (a broken stage)
MAX_RETRIES = 3  # a configuration whose worker died this often is not queued again


class Interrupted(Exception):
    """The worker was asked to stop (Ctrl-C, SIGTERM); the study can be resumed."""


class TrialFailed(Exception):
    """A trial's experiment failed (its stage raised, a metric is missing): the trial is
    recorded as failed and the study goes on."""


class ClaimedTrial:
    """A queued trial this worker claimed, with what :meth:`Tuner._execute` needs of an
    ``optuna.Trial``, through the public storage API (Optuna hands out ``Trial`` objects only
    from ``study.ask``, which creates a new trial when the queue is empty)."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, frozen: FrozenTrial):
        self._storage = storage
        self.trial_id = trial_id
        self.number = frozen.number
        self.params = dict(frozen.params)
        self.user_attrs = dict(frozen.user_attrs)

    def set_user_attr(self, key: str, value: Any) -> None:
        self._storage.set_trial_user_attr(self.trial_id, key, value)
        self.user_attrs[key] = value


@dataclass
class TuneRequest:
    """Everything one worker needs: the project, its params and the tune settings."""

    repo: Path
    tune: TuneParams  # params.yaml's tune section with the command line applied
    raw_params: dict[str, Any]  # params.yaml as read (to check values of the space)
    params: Params
    storage: str = ""  # a URL given apart from the tune section (tests); "" = tune.storage
    timeout: float | None = None  # stop starting trials after this many seconds
    # Stop starting trials when one more could take the study past this many training epochs
    # (finished trials count the epochs they ran, running ones the full budget).
    epoch_budget: int | None = None
    allow_baseline_change: bool = False
    baseline: str | None = None  # the commit trials run on; None = HEAD (tests fake it)


@dataclass
class WorkerReport:
    """What this worker did."""

    started: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    requeued: list[int] = field(default_factory=list)  # trials of dead workers, re-queued
    recovered: list[int] = field(default_factory=list)  # dead workers' finished experiments
    seconds: float = 0.0
    seed_runs: int = 0  # --seeds reruns this worker ran (not trials of the study)


def _log(line: str) -> None:
    print(line, flush=True)


class Tuner:
    """One worker of a study (threads for ``jobs`` concurrent trials)."""

    def __init__(
        self,
        request: TuneRequest,
        runner: Runner | None = None,
        log: Callable[[str], None] = _log,
    ) -> None:
        import optuna

        self.request = request
        self.tune = request.tune
        self.log = log
        self.repo = Path(request.repo)
        self.url = resolve_url(request.storage or request.tune.storage, self.repo)
        self.space: SearchSpace = build_space(self.tune, request.raw_params)
        self.grid = self.tune.sampler == "grid"
        # Metric specs and the pruner's direction were checked with params.yaml (TuneParams).
        train = request.params.train
        self.config = StudyConfig(
            study=self.tune.study,
            sampler=self.tune.sampler,
            sampler_seed=(
                self.tune.sampler_seed
                if self.tune.sampler_seed is not None
                else request.params.seed
            ),
            objectives=[as_dict(o) for o in self.tune.objectives],
            constraints=[as_dict(c) for c in self.tune.constraints],
            pruner=as_dict(self.tune.pruner),
            space=self.space.describe(),
            epochs=train.epochs,
            evaluations=train.epochs if not train.eval_every_steps and not train.max_steps else 0,
            baseline=request.baseline or head_commit(self.repo),
            global_seed=request.params.seed,
        )
        metrics = self.config.metrics
        self.runner: Runner = runner or DvcRunner(self.repo, metrics, self.config.baseline)
        # Heartbeats on: study.optimize beats for each running trial and, before each new one,
        # fails the stale trials of dead workers and calls _on_stale for each.
        self.storage = open_storage(self.url, stale_callback=self._on_stale)
        with quiet_optuna():
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
        self._failures_in_a_row = 0
        self.identity = worker_identity()
        self.report = WorkerReport()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._optuna = optuna
        self.study: optuna.Study | None = None

    # ------------------------------------------------------------------ the study

    def open_study(self, to_run: bool = True) -> optuna.Study:
        """Create the study, or join it after checking it was made with the same settings.

        ``to_run=False`` (a report, an apply) skips the baseline check: reading a study is
        fine from any commit, running more trials of it is not."""
        optuna = self._optuna
        name = self.tune.study
        existing = set(optuna.get_all_study_names(self.storage))
        if name not in existing:
            ours = re.compile(rf"{re.escape(name)}-\d{{3,}}(-seed\d+)?(-[a-z]+)?")
            leftovers = [n for n in self.runner.existing(f"{name}-") if ours.fullmatch(n)]
            if leftovers:
                shown = ", ".join(leftovers[:3]) + (" ..." if len(leftovers) > 3 else "")
                raise UserError(
                    f"experiments of a study named '{name}' already exist ({shown}) but the "
                    f"storage {safe_url(self.url)} has no such study (was its database "
                    "deleted?). Choose another --study, or remove them with "
                    f"`dvc exp remove {' '.join(leftovers[:3])} ...`"
                )
        created = False
        with quiet_optuna():
            try:
                study = optuna.create_study(
                    study_name=name,
                    storage=self.storage,
                    directions=self.config.directions,
                    sampler=self._sampler(0),
                    pruner=build_pruner(self.config),
                )
                created = True
            except optuna.exceptions.DuplicatedStudyError:
                study = optuna.load_study(study_name=name, storage=self.storage)
        if created:
            study.set_user_attr(CONFIG_ATTR, self.config.to_json())
            self.log(f"tune: created study '{name}' in {safe_url(self.url)}")
        else:
            self._check_joined(study, to_run)
        trials = study.get_trials(deepcopy=False)
        # A fresh sampler seed per session: a resumed study must not replay its first draws.
        offset = len(trials)
        if any(t.state.name == "RUNNING" for t in trials):
            offset += os.getpid()  # another worker is active: draw different configurations
        with quiet_optuna():
            study = optuna.load_study(
                study_name=name,
                storage=self.storage,
                sampler=self._sampler(offset),
                pruner=build_pruner(self.config),
            )
        if self.grid:
            self._enqueue_grid(study, created)
        if not created:
            done = sum(1 for t in trials if t.state.is_finished())
            self.log(f"tune: resuming study '{name}' ({done} finished trials)")
        self.study = study
        return study

    def _check_joined(self, study: optuna.Study, to_run: bool = True) -> None:
        stored = None
        for _ in range(50):  # the creator may still be writing it
            stored = StudyConfig.of_study(study)
            if stored is not None:
                break
            time.sleep(0.2)
            study = self._optuna.load_study(study_name=study.study_name, storage=self.storage)
        if stored is None:
            raise UserError(
                f"study '{study.study_name}' in {safe_url(self.url)} was not created by "
                "nlpflow tune; choose another --study"
            )
        diffs = stored.differences(self.config)
        if diffs:
            raise UserError(
                f"study '{study.study_name}' was created with different {', '.join(diffs)}; "
                "its trials would not be comparable with these settings. Use a new --study "
                "name, or restore the settings it was created with"
            )
        moved = stored.baseline != self.config.baseline
        if to_run and moved and not self.request.allow_baseline_change:
            raise UserError(
                f"study '{study.study_name}' ran its trials on commit {stored.baseline[:8]}, "
                f"HEAD is {self.config.baseline[:8]}: code or data changes make old and new "
                "trials incomparable. Check out that commit, use a new --study, or pass "
                "--allow-baseline-change if the change cannot matter"
            )

    def _sampler(self, offset: int) -> optuna.samplers.BaseSampler:
        optuna = self._optuna
        seed = (self.config.sampler_seed + offset) % (2**31)
        if self.tune.sampler == "tpe":
            # A third of the expected trials are random (at least 2, at most 10), then TPE.
            expected = self.tune.n_trials
            if self.request.epoch_budget is not None:
                expected = min(expected, self.request.epoch_budget // max(1, self.config.epochs))
            startup = max(2, min(10, expected // 3))
            with quiet_optuna():
                return optuna.samplers.TPESampler(
                    seed=seed,
                    n_startup_trials=startup,
                    multivariate=True,
                    constant_liar=True,  # concurrent trials do not all chase the same point
                )
        return optuna.samplers.RandomSampler(seed=seed)

    def _enqueue_grid(self, study: optuna.Study, created: bool) -> None:
        """Queue every grid combination once (only the creator, or a resume that finds the
        queue incomplete, enqueues; claims are atomic, so each runs once)."""
        if not created:
            # The creator queues the grid; joining at the same moment, wait for it to finish.
            # Only if it never does (it died) does this worker queue what is missing.
            for _ in range(300):
                if study.user_attrs.get("grid_enqueued"):
                    return
                time.sleep(0.2)
                study = self._optuna.load_study(study_name=study.study_name, storage=self.storage)
        dists = self.space.distributions(grid=True)
        seen = [t.params for t in study.get_trials(deepcopy=False)]
        added = 0
        for combo in self.space.grid():
            if combo in seen:
                continue
            study.add_trial(
                self._optuna.trial.create_trial(
                    state=self._optuna.trial.TrialState.WAITING, params=combo, distributions=dists
                )
            )
            added += 1
        study.set_user_attr("grid_enqueued", True)
        if added:
            self.log(f"tune: grid of {len(self.space.grid())} combinations queued")

    # ------------------------------------------------------------------ running

    def optimize(self) -> WorkerReport:
        """Run trials until the study's budget is spent (or the timeout, or Ctrl-C).

        A sampled study (TPE, random) runs under Optuna's own ``study.optimize`` with
        ``n_jobs`` threads and :class:`optuna.study.MaxTrialsCallback` for the study-wide
        budget; a grid study runs its queued combinations, each claimed once (:meth:`_drain`).

        Raises:
            Interrupted: Ctrl-C or SIGTERM; the running trials were failed and re-queued.
        """
        study = self.study or self.open_study()
        started = time.monotonic()
        self._recover(study)
        with self._signals(study):
            if self.grid:
                self._drain(study, started)
            else:
                self._sample(study)
        self.report.seconds = round(time.monotonic() - started, 1)
        return self.report

    def _sample(self, study: optuna.Study) -> None:
        """Sampled trials under ``study.optimize``: this worker attempts at most the results
        still missing when it starts (``n_trials`` minus complete, pruned and running trials;
        queued retries first), and ``MaxTrialsCallback`` stops it when the study as a whole
        has them (other workers' running trials included)."""
        optuna = self._optuna
        TrialState = optuna.trial.TrialState
        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = study.get_trials(deepcopy=False)
        missing = self.tune.n_trials - sum(1 for t in trials if t.state in counted)
        waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
        if max(missing, waiting) <= 0 or not self._epochs_left(study):
            return
        callbacks = [
            optuna.study.MaxTrialsCallback(self.tune.n_trials, states=counted),
            self._after,
        ]
        with quiet_optuna():
            study.optimize(
                self._objective,
                n_trials=max(missing, waiting),
                n_jobs=self.tune.jobs,
                timeout=self.request.timeout,
                callbacks=callbacks,
                catch=(TrialFailed,),
            )

    def _after(self, study: optuna.Study, frozen: FrozenTrial) -> None:
        """After each trial of :meth:`_sample`: lost trials of dead workers on this machine
        are re-queued; the study stops when the epoch budget is spent or when trials keep
        failing (a broken stage would otherwise fail every trial of the budget)."""
        self._recover(study)
        with self._lock:  # callbacks run in every optimize thread
            if frozen.state.name == "FAIL":
                self._failures_in_a_row += 1
            else:
                self._failures_in_a_row = 0
            failing = self._failures_in_a_row >= MAX_FAILURES_IN_A_ROW
        if failing:
            self.log(
                f"tune: {self._failures_in_a_row} trials failed in a row; stopping this worker "
                "(see their errors in reports/tune.md or `dvc exp show`)"
            )
            study.stop()
        elif not self._epochs_left(study):
            study.stop()

    def _epochs_left(self, study: optuna.Study) -> bool:
        """Whether one more trial fits the epoch budget (running ones count in full)."""
        if self.request.epoch_budget is None:
            return True
        trials = study.get_trials(deepcopy=False)
        running = sum(1 for t in trials if t.state.name == "RUNNING")
        spent = epochs_spent(trials) + running * self.config.epochs
        return spent + self.config.epochs <= self.request.epoch_budget

    def _objective(self, trial: optuna.Trial) -> list[float]:
        """One sampled trial, run by ``study.optimize``: its values, or TrialPruned /
        TrialFailed / Interrupted, which Optuna records as the trial's state."""
        assert self.study is not None
        params = self.space.suggest(trial)
        state, values = self._execute(self.study, trial, params)
        if state == "pruned":
            raise self._optuna.TrialPruned()
        if state == "failed":
            raise TrialFailed(str(trial.user_attrs.get("error", "failed")))
        return values

    def _drain(self, study: optuna.Study, started: float | None = None) -> None:
        """Run the queued (WAITING) trials of ``study`` in ``jobs`` threads until none is left.

        Used for grid combinations and seed reruns, where the queue is the whole plan: each
        trial is claimed by an atomic WAITING -> RUNNING update (:meth:`_claim`) and told its
        state with ``study.tell``. ``study.optimize`` does not fit here: when the queue is
        empty it would sample a new configuration instead of stopping.
        """
        errors: list[BaseException] = []

        def loop() -> None:
            failures = 0
            while not self._stopping.is_set():
                timeout = self.request.timeout
                if (
                    started is not None
                    and timeout is not None
                    and (time.monotonic() - started > timeout)
                ):
                    return
                self._recover(study)
                claimed = self._claim(study)
                if claimed is None:
                    return
                try:
                    with self._heartbeat(claimed.trial_id):
                        state, values = self._execute(study, claimed, dict(claimed.params))
                    with quiet_optuna():
                        if state == "complete":
                            study.tell(claimed.number, values)
                        else:
                            TrialState = self._optuna.trial.TrialState
                            final = TrialState.PRUNED if state == "pruned" else TrialState.FAIL
                            study.tell(claimed.number, state=final)
                    failures = 0
                except Interrupted:
                    return
                except Exception as err:  # keep the other threads going; stop if repeated
                    self._fail(study, claimed.number, f"{type(err).__name__}: {err}")
                    failures += 1
                    self.log(f"tune: worker error: {type(err).__name__}: {err}")
                    if failures >= MAX_FAILURES_IN_A_ROW:
                        errors.append(err)
                        return

        threads = [
            threading.Thread(target=loop, name=f"tune-{i}", daemon=True)
            for i in range(self.tune.jobs)
        ]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():  # a signal handler runs between waits, never inside a join
                t.join(0.5)
        if self._stopping.is_set():
            raise Interrupted()
        if errors:
            raise errors[0]

    @contextlib.contextmanager
    def _signals(self, study: optuna.Study) -> Iterator[None]:
        """SIGINT and SIGTERM stop the worker gracefully (handlers need the main thread): the
        running experiments are stopped, their trials failed and re-queued, and
        :class:`Interrupted` is raised once every thread has recorded that (a second signal
        gives up at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(_sig: int, _frame: Any) -> None:
            if self._stopping.is_set():
                raise KeyboardInterrupt  # a second signal: stop waiting
            self._stopping.set()
            self.log("tune: interrupted; stopping the running trials ...")
            self.runner.terminate()
            with contextlib.suppress(RuntimeError):  # outside study.optimize: nothing to stop
                study.stop()

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, previous in old.items():
                signal.signal(sig, previous)
        if self._stopping.is_set():
            raise Interrupted()

    def _claim(self, study: optuna.Study) -> ClaimedTrial | None:
        """Claim a queued trial (WAITING -> RUNNING, atomic: see
        :mod:`nlpflow.tuning.storage`); None when the queue is empty or the worker stops."""
        optuna = self._optuna
        with self._lock:
            if self._stopping.is_set():
                return None
            study_id = self.storage.get_study_id_from_name(study.study_name)
            waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
            for frozen in waiting:
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                    study_id, frozen.number
                )
                try:
                    if not self.storage.set_trial_state_values(
                        trial_id, state=optuna.trial.TrialState.RUNNING
                    ):
                        continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
                self.storage.record_heartbeat(trial_id)
                return ClaimedTrial(self.storage, trial_id, frozen)
        return None

    @contextlib.contextmanager
    def _heartbeat(self, trial_id: int) -> Iterator[None]:
        """Heartbeats of a claimed trial while it runs (``study.optimize`` beats for its own)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(trial_id)

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _trial_env(self, number: int, name: str, prune: bool) -> dict[str, str]:
        env = trial_environment(self.url, self.tune.study, number, name) if prune else {}
        if self.tune.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
            # Trials share the CPU cores: oversubscribed threads only slow every trial down.
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.tune.jobs))
        return env

    def _fail(self, study: optuna.Study, number: int, error: str) -> None:
        """Fail a trial of this worker on an unexpected error: never leave one RUNNING behind
        a live worker, nobody else would fail it."""
        with contextlib.suppress(Exception), quiet_optuna():
            trial_id = self._trial_id(study, number)
            self.storage.set_trial_user_attr(trial_id, "error", error[:500])
            study.tell(number, state=self._optuna.trial.TrialState.FAIL, skip_if_finished=True)

    def _trial_id(self, study: optuna.Study, number: int) -> int:
        """The storage's id of trial ``number`` of ``study`` (the storage API takes ids)."""
        study_id = self.storage.get_study_id_from_name(study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def _execute(
        self, study: optuna.Study, trial: optuna.Trial | ClaimedTrial, params: dict[str, Value]
    ) -> tuple[str, list[float]]:
        """Run ``trial`` as a DVC experiment and record what it gave on the trial.

        Returns ("complete", objective values), ("pruned", []) or ("failed", []); the caller
        tells the study. Raises :class:`Interrupted` (the trial re-queued) on Ctrl-C.
        """
        seeds_run = study.study_name != self.tune.study
        for key, value in self.identity.items():
            trial.set_user_attr(key, value)
        if trial.user_attrs.get("error"):
            trial.set_user_attr("error", "")  # a retry starts clean (Optuna copies the attrs)
        if seeds_run:
            config_trial = int(trial.user_attrs["config_trial"])
            seed = int(trial.user_attrs["seed"])
            name = f"{ex.exp_name(self.tune.study, config_trial)}-seed{seed}"
            overrides = {k: set_override(v) for k, v in params.items()}
            overrides["seed"] = str(seed)
            env = self._trial_env(0, name, False)
            message = f"nlpflow tune: study {self.tune.study}, trial {config_trial}, seed {seed}"
            shown_params: dict[str, Value] = {**params, "seed": seed}
        else:
            name = ex.exp_name(self.tune.study, trial.number)
            overrides = {k: set_override(v) for k, v in params.items()}
            env = self._trial_env(trial.number, name, self.config.pruning)
            message = f"nlpflow tune: study {self.tune.study}, trial {trial.number}"
            shown_params = params
            self.report.started += 1
        trial.set_user_attr("exp", name)
        retried = retry_of(self.storage.get_trial(self._trial_id(study, trial.number)))
        if retried is not None:
            self.log(f"tune: trial {trial.number} reruns trial {retried}")
        started = time.monotonic()
        result = self.runner.run(name, overrides, env, message)
        if self._stopping.is_set() and (result.sha is None or result.errors):
            trial.set_user_attr("error", "interrupted")
            self._requeue(study, trial.number, "was interrupted")
            raise Interrupted()
        return self._record(trial, result, shown_params, time.monotonic() - started, seeds_run)

    def _record(
        self,
        trial: optuna.Trial | ClaimedTrial,
        result: TrialResult,
        params: dict[str, Value],
        seconds: float,
        seeds_run: bool,
    ) -> tuple[str, list[float]]:
        """Record the experiment's outcome on the trial and mark the experiment."""
        values = [result.metrics.get(o["metric"]) for o in self.config.objectives]
        state, detail = "complete", "complete"
        if result.sha is None or result.errors or any(v is None for v in values):
            missing = [
                o["metric"]
                for o, v in zip(self.config.objectives, values, strict=True)
                if v is None
            ]
            reason = "; ".join(result.errors[-2:]) or (
                f"metric {missing[0]} missing" if missing else "no experiment"
            )
            state, detail = "failed", f"failed: {reason}"
        elif result.pruned:
            state, detail = "pruned", "pruned"
        violations = self._violations(result) if state == "complete" else {}
        feasible = all(v <= 0 for v in violations.values())
        suffix = {"failed": "failed", "pruned": "pruned"}.get(state, "")
        if state == "complete" and not feasible:
            suffix, detail = "infeasible", "complete, infeasible"
        exp = result.exp
        if suffix and result.sha is not None:
            exp = self.runner.mark(result.exp, suffix)
        trial.set_user_attr("exp", exp)
        trial.set_user_attr("sha", result.sha)
        trial.set_user_attr("metrics", dict(result.metrics))
        trial.set_user_attr("epochs_run", result.epochs_run)
        trial.set_user_attr("stop_reason", result.stop_reason)
        trial.set_user_attr("seconds", round(seconds, 1))
        trial.set_user_attr("feasible", feasible)
        if state == "failed":
            trial.set_user_attr("error", detail)
            trial.set_user_attr("log_tail", result.log_tail[-1500:])
        trial.set_user_attr("constraints", violations)
        if not isinstance(trial, ClaimedTrial):  # samplers read constraints of sampled trials
            for key, value in violations.items():
                trial.set_constraint(key, value)
        if seeds_run:
            self.report.seed_runs += 1
        else:
            setattr(self.report, state, getattr(self.report, state) + 1)
        shown = " ".join(f"{k}={short_number(v)}" for k, v in params.items())
        value_text = ", ".join(short_number(v) for v in values if v is not None) or "-"
        epochs = f", {result.epochs_run} epochs" if result.epochs_run is not None else ""
        self.log(
            f"trial {trial.number} [{exp}] {shown} -> {value_text} ({detail}{epochs}, "
            f"{seconds:.0f}s)"
        )
        return state, [float(v) for v in values if v is not None]

    def _violations(self, result: TrialResult) -> dict[str, float]:
        """Constraint values in Optuna's convention: > 0 by how much a bound is broken,
        <= 0 (minus the margin) when every bound is met."""
        out: dict[str, float] = {}
        for c in self.config.constraints:
            value = result.metrics.get(c["metric"])
            if value is None:
                out[c["metric"]] = 1.0  # a constraint that cannot be checked is not met
                continue
            margins = []
            if c.get("min") is not None:
                margins.append(float(c["min"]) - value)
            if c.get("max") is not None:
                margins.append(value - float(c["max"]))
            out[c["metric"]] = max(margins)
        return out

    # ------------------------------------------------------------------ lost trials

    def _requeue(self, study: optuna.Study, number: int, why: str) -> None:
        """Queue trial ``number``'s configuration again with Optuna's retry callback (the
        retry records ``failed_trial``: see :func:`nlpflow.tuning.storage.retry_of`)."""
        frozen = self.storage.get_trial(self._trial_id(study, number))
        with quiet_optuna():
            self._retry(study, frozen)
        self.report.requeued.append(number)
        self.log(f"tune: trial {number} {why}: marked failed, its configuration re-queued")

    def _recover(self, study: optuna.Study) -> None:
        """Fail the trials of dead workers and re-queue (or recover) them: those of other
        machines when their heartbeat is older than ``GRACE_SECONDS`` (Optuna's
        ``fail_stale_trials``, which calls :meth:`_on_stale`), those of this machine at once
        when their worker's process is gone."""
        optuna = self._optuna
        with quiet_optuna():
            optuna.storages.fail_stale_trials(study)
        host = self.identity["host"]
        now = time.time()
        for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            owner_host = frozen.user_attrs.get("host")
            pid = frozen.user_attrs.get("pid")
            if owner_host == host and isinstance(pid, int):
                if pid == os.getpid() or process_alive(pid):
                    continue
            elif owner_host is None and frozen.datetime_start is not None:
                age = now - frozen.datetime_start.timestamp()
                if age < GRACE_SECONDS:
                    continue  # just claimed: its worker has not said who it is yet
            else:
                continue  # another machine's trial: the heartbeat decides
            trial_id = self._trial_id(study, frozen.number)
            try:
                if not self.storage.set_trial_state_values(
                    trial_id, state=optuna.trial.TrialState.FAIL
                ):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker got there first
            self._on_stale(study, self.storage.get_trial(trial_id))

    def _on_stale(self, study: optuna.Study, frozen: FrozenTrial) -> None:
        """A dead worker's trial (already failed): recover its result if its experiment
        finished, else queue it again (at most ``MAX_RETRIES`` times)."""
        optuna = self._optuna
        who = f"{frozen.user_attrs.get('host', '?')}:{frozen.user_attrs.get('pid', '?')}"
        name = str(frozen.user_attrs.get("exp") or ex.exp_name(self.tune.study, frozen.number))
        result = None
        with contextlib.suppress(Exception):
            result = self.runner.read(name)
        objectives = self.config.objective_metrics
        values = [result.metrics.get(m) for m in objectives] if result else []
        if result is not None and values and all(v is not None for v in values):
            state = (
                optuna.trial.TrialState.PRUNED
                if result.pruned
                else optuna.trial.TrialState.COMPLETE
            )
            attrs = dict(frozen.user_attrs)
            attrs.update(
                {
                    "recovered_from": frozen.number,
                    "sha": result.sha,
                    "metrics": result.metrics,
                    "epochs_run": result.epochs_run,
                    "stop_reason": result.stop_reason,
                    "feasible": True,
                }
            )
            study.add_trial(
                optuna.trial.create_trial(
                    state=state,
                    params=frozen.params,
                    distributions=frozen.distributions,
                    values=[float(v) for v in values if v is not None]
                    if state == optuna.trial.TrialState.COMPLETE
                    else None,
                    user_attrs=attrs,
                )
            )
            self.report.recovered.append(frozen.number)
            self.log(
                f"tune: trial {frozen.number}'s worker ({who}) died after its experiment {name} "
                "finished; its result was recovered"
            )
            return
        if len(retry_history(frozen)) >= MAX_RETRIES:
            self.log(
                f"tune: trial {frozen.number} lost its worker ({who}) after {MAX_RETRIES} "
                "retries of its configuration; not queued again"
            )
            return
        self._requeue(study, frozen.number, f"lost its worker ({who})")

    # ------------------------------------------------------------------ seeds

    def run_seeds(self, k: int, top: int) -> None:
        """Rerun the ``top`` configurations with ``k`` seeds in total (their own run is the
        first seed), as trials of the study ``<study>.seeds`` (each claimed once)."""
        from nlpflow.tuning.analysis import top_trials

        optuna = self._optuna
        study = self.study or self.open_study()
        self._wait_for_running(study)
        best = top_trials(study, self.config, top)
        if not best:
            self.log("tune: no complete, feasible trial to rerun with seeds")
            return
        seeds = [self.config.global_seed + i for i in range(1, k)]
        name = study.study_name + SEEDS_SUFFIX
        with quiet_optuna():
            seeds_study = optuna.create_study(
                study_name=name,
                storage=self.storage,
                directions=self.config.directions,
                load_if_exists=True,
            )
        wanted = [(t, s) for t in best for s in seeds]
        have = {
            (t.user_attrs.get("config_trial"), t.user_attrs.get("seed"))
            for t in seeds_study.get_trials(deepcopy=False)
            if retry_of(t) is None
        }
        missing = [(t, s) for t, s in wanted if (t.number, s) not in have]
        if missing and self._enqueue_lock(study, missing):
            for trial, seed in missing:
                seeds_study.add_trial(
                    optuna.trial.create_trial(
                        state=optuna.trial.TrialState.WAITING,
                        params=trial.params,
                        distributions=trial.distributions,
                        user_attrs={"config_trial": trial.number, "seed": seed},
                    )
                )
            self.log(
                f"tune: rerunning trials {', '.join(str(t.number) for t in best)} with seeds "
                f"{', '.join(str(s) for s in seeds)} ({len(missing)} runs)"
            )
        with self._signals(seeds_study):
            self._drain(seeds_study)

    def _enqueue_lock(self, study: optuna.Study, missing: list[Any]) -> bool:
        """Only one worker queues a given set of seed runs: creating a marker study is the
        atomic test-and-set every storage offers."""
        key = "-".join(f"{t.number}s{s}" for t, s in missing)
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]  # the same in every process
        try:
            self._optuna.create_study(
                study_name=f"{study.study_name}{SEEDS_SUFFIX}.queued.{digest}",
                storage=self.storage,
            )
        except self._optuna.exceptions.DuplicatedStudyError:
            return False
        return True

    def _wait_for_running(self, study: optuna.Study) -> None:
        """Seed reruns pick the top configurations: wait for other workers' trials first."""
        TrialState = self._optuna.trial.TrialState
        announced = False
        while not self._stopping.is_set():
            self._recover(study)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                return
            if not announced:
                self.log(f"tune: waiting for {len(running)} running trial(s) of other workers")
                announced = True
            time.sleep(HEARTBEAT_SECONDS / 2)


def epochs_spent(trials: list[FrozenTrial]) -> int:
    """Training epochs the finished trials ran (what the search has cost so far)."""
    return sum(int(t.user_attrs.get("epochs_run") or 0) for t in trials if t.state.is_finished())
