"""The search space of ``nlpflow tune``: params.yaml's ``tune.space`` as Optuna distributions.

Each key of ``tune.space`` is a params.yaml path (``train.lr``); each trial sets its values on
its DVC experiment with ``-S path=value``. Checks happen before any trial runs:

- the path must name an existing parameter, and every value the space can produce (its bounds,
  its grid, its choices) must pass the same validation the stages apply (``lr > 0`` ...);
- ``train.epochs`` (and ``train.max_steps``) is refused unless ``allow_epochs``: a schedule tuned for 100 epochs says
  nothing about 80 (warm-up, decay and early stopping all depend on the budget), so the tuning
  budget must be the final training's budget;
- ``seed`` is refused: it is not a hyperparameter (``--seeds K`` measures its effect instead).

This module also judges the boundaries: a best value in the outer tenth of its range (on the
log scale for log parameters) may mean the optimum lies beyond it.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nlpflow.errors import UserError
from nlpflow.params import ParamsError, TuneParams, TuneSpaceParams, parse_params

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

Value = str | bool | int | float

BOUNDARY_FRACTION = 0.1  # "the outer tenth of its range"
BUDGET_PARAMS = ("train.epochs", "train.max_steps")  # the training budget: not searched


class SpaceError(UserError):
    """The search space is invalid or breaks a tuning rule."""


@dataclass(frozen=True)
class Dimension:
    """One searched parameter."""

    path: str
    spec: TuneSpaceParams

    @property
    def numeric(self) -> bool:
        return self.spec.type in ("float", "int")

    def distribution(self, grid: bool = False) -> BaseDistribution:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        s = self.spec
        if s.type == "categorical":
            return CategoricalDistribution(list(s.choices))
        assert s.low is not None and s.high is not None
        if s.type == "int":
            step = 1 if s.step is None or s.log else int(s.step)
            return IntDistribution(int(s.low), int(s.high), log=s.log, step=step)
        if grid:
            # Grid values need not sit on a step: the distribution only has to contain them.
            return FloatDistribution(float(s.low), float(s.high), log=s.log)
        return FloatDistribution(float(s.low), float(s.high), log=s.log, step=s.step)

    def grid_values(self) -> list[Value]:
        s = self.spec
        if s.grid:
            return [int(float(v)) if s.type == "int" else v for v in s.grid]
        if s.type == "categorical":
            return list(s.choices)
        if s.type == "int":
            assert s.low is not None and s.high is not None
            step = int(s.step or 1)
            values = list(range(int(s.low), int(s.high) + 1, step))
            if len(values) <= 20:
                return list(values)
        raise SpaceError(
            f"params.yaml: tune.space.{self.path} needs grid: [...] values for sampler: grid "
            f"(a {s.type} range has no natural grid)"
        )

    def position(self, value: float) -> float:
        """Where ``value`` lies in [low, high]: 0 at low, 1 at high (log scale if log)."""
        s = self.spec
        assert s.low is not None and s.high is not None
        low, high, v = float(s.low), float(s.high), float(value)
        if s.log:
            low, high, v = math.log(low), math.log(high), math.log(max(v, 1e-300))
        return (v - low) / (high - low)


class SearchSpace:
    """The searched parameters, checked against params.yaml and the tuning rules."""

    def __init__(self, dimensions: list[Dimension]) -> None:
        self.dimensions = dimensions

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    @property
    def paths(self) -> list[str]:
        return [d.path for d in self.dimensions]

    def distributions(self, grid: bool = False) -> dict[str, BaseDistribution]:
        return {d.path: d.distribution(grid) for d in self.dimensions}

    def suggest(self, trial: optuna.trial.Trial, grid: bool = False) -> dict[str, Value]:
        """Ask ``trial`` for a value of every dimension (fixed values of enqueued trials win)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        params: dict[str, Value] = {}
        for dim in self.dimensions:
            dist = dim.distribution(grid)
            if isinstance(dist, CategoricalDistribution):
                choice = trial.suggest_categorical(dim.path, list(dist.choices))
                assert choice is None or isinstance(choice, str | bool | int | float)
                params[dim.path] = choice  # type: ignore[assignment]
            elif isinstance(dist, IntDistribution):
                params[dim.path] = trial.suggest_int(
                    dim.path, dist.low, dist.high, step=dist.step, log=dist.log
                )
            else:
                assert isinstance(dist, FloatDistribution)
                params[dim.path] = trial.suggest_float(
                    dim.path, dist.low, dist.high, step=dist.step, log=dist.log
                )
        return params

    def grid(self) -> list[dict[str, Value]]:
        """Every combination of the grid values, in a stable order."""
        names = self.paths
        values = [d.grid_values() for d in self.dimensions]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, stored with the study to detect a changed space."""
        from nlpflow.params import as_dict

        return {d.path: as_dict(d.spec) for d in self.dimensions}


def build_space(tune: TuneParams, raw_params: Mapping[str, Any]) -> SearchSpace:
    """Check ``tune.space`` against the project's params (``raw_params``: params.yaml as read)."""
    if not tune.space:
        raise SpaceError("params.yaml: tune.space is empty; name at least one parameter to search")
    dims: list[Dimension] = []
    for path, spec in tune.space.items():
        where = f"tune.space.{path}"
        if path == "seed":
            raise SpaceError(
                f"params.yaml: {where}: the seed is not a hyperparameter; use --seeds K to rerun "
                "the top configurations with K seeds instead"
            )
        if path.startswith("tune."):
            raise SpaceError(f"params.yaml: {where}: the tune section cannot search itself")
        if path in BUDGET_PARAMS and not tune.allow_epochs:
            raise SpaceError(
                f"params.yaml: {where}: tuning must use the final training's epoch budget (a "
                "schedule tuned for one number of epochs says nothing about another: warm-up, "
                "decay and early stopping all depend on it). Set it to the budget you will train "
                "with, or set tune.allow_epochs: true if searching it is what you want"
            )
        current = _lookup(raw_params, path)
        if current is _MISSING:
            raise SpaceError(f"params.yaml: {where}: '{path}' is not a parameter in params.yaml")
        if isinstance(current, dict | list):
            raise SpaceError(f"params.yaml: {where}: '{path}' is a section, not a single value")
        dim = Dimension(path, spec)
        for value in _probe_values(dim):
            check_value(raw_params, path, value, where)
        dims.append(dim)
    return SearchSpace(dims)


def _probe_values(dim: Dimension) -> list[Value]:
    s = dim.spec
    if s.type == "categorical":
        return list(s.choices)
    assert s.low is not None and s.high is not None
    values: list[Value] = [s.low, s.high, *s.grid]
    if s.type == "int":
        return [int(float(v)) for v in values]
    return values


def check_value(raw_params: Mapping[str, Any], path: str, value: Value, where: str = "") -> None:
    """Raise :class:`SpaceError` if params.yaml with ``path: value`` fails validation."""
    problem = value_problem(raw_params, path, value)
    if problem:
        raise SpaceError(f"params.yaml: {where or path}: the value {value!r} is invalid: {problem}")


def value_problem(raw_params: Mapping[str, Any], path: str, value: Value) -> str | None:
    """Why params.yaml with ``path`` set to ``value`` is invalid, or None if it is valid."""
    raw = copy.deepcopy(dict(raw_params))
    _assign(raw, path, value)
    try:
        parse_params(raw)
    except ParamsError as err:
        return str(err).removeprefix("params.yaml: ")
    return None


_MISSING = object()


def _lookup(raw: Mapping[str, Any], path: str) -> Any:
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _assign(raw: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = raw
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def set_override(value: Value) -> str:
    """``value`` as the right-hand side of ``dvc exp run -S path=<value>``.

    DVC reads -S values with Hydra's override grammar: a comma makes a sweep and a few
    characters are special, so strings other than plain words are quoted.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if value and all(c.isalnum() or c in "_-./" for c in value) and not value[0].isdigit():
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- boundaries


@dataclass
class BoundaryWarning:
    path: str
    value: float
    side: str  # "low" or "high"
    low: float
    high: float
    log: bool
    proposal: float | None  # the extended bound, or None when the parameter cannot go further
    reason: str  # why it cannot be extended, when proposal is None

    def message(self) -> str:
        scale = " (log scale)" if self.log else ""
        where = "lower" if self.side == "low" else "upper"
        head = (
            f"`{self.path}` = {_fmt(self.value)} lies in the {where} tenth of its range "
            f"[{_fmt(self.low)}, {_fmt(self.high)}]{scale}: the best may lie beyond it."
        )
        if self.proposal is None:
            return f"{head} It cannot be extended further: {self.reason}."
        new = (self.proposal, self.high) if self.side == "low" else (self.low, self.proposal)
        return f"{head} Extend the range to [{_fmt(new[0])}, {_fmt(new[1])}] and search again."


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _round_sig(value: float, digits: int = 2) -> float:
    if value == 0:
        return 0.0
    return float(f"{value:.{digits}g}")


def boundary_warnings(
    space: SearchSpace,
    best: Mapping[str, Value],
    raw_params: Mapping[str, Any],
    grid: bool = False,
) -> list[BoundaryWarning]:
    """Numeric parameters whose best value lies in the outer tenth of the searched range.

    The proposed range extends the offending side by half the current width (a factor of
    sqrt(high/low) on the log scale), pulled back to the furthest value the params checks
    accept (warmup_ratio cannot go below 0, dropout must stay below 1, ...). A grid search
    only ever saw its grid values, so with ``grid`` the range is the span of those.
    """
    out = []
    for dim in space:
        if not dim.numeric or dim.path not in best:
            continue
        s = dim.spec
        assert s.low is not None and s.high is not None
        span = [float(v) for v in s.grid] if grid and s.grid else [s.low, s.high]
        low, high = min(span), max(span)
        value = float(best[dim.path])
        pos = Dimension(dim.path, _with_range(s, low, high)).position(value)
        side = "low" if pos <= BOUNDARY_FRACTION else "high" if pos >= 1 - BOUNDARY_FRACTION else ""
        if not side:
            continue
        proposal, reason = _extend(dim, float(low), float(high), side, raw_params)
        out.append(
            BoundaryWarning(dim.path, value, side, float(low), float(high), s.log, proposal, reason)
        )
    return out


def _round_towards(value: float, bound: float, digits: int) -> float:
    """``value`` with ``digits`` significant digits, rounded in the direction of ``bound``."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - digits + 1)
    q = value / scale
    q = math.floor(q) if bound < value else math.ceil(q)
    return float(f"{q * scale:.{digits + 2}g}")


def _with_range(s: TuneSpaceParams, low: float, high: float) -> TuneSpaceParams:
    return TuneSpaceParams(type=s.type, low=low, high=high, log=s.log)


def _extend(
    dim: Dimension, low: float, high: float, side: str, raw_params: Mapping[str, Any]
) -> tuple[float | None, str]:
    s = dim.spec
    bound = low if side == "low" else high
    if s.log:
        factor = math.sqrt(high / low)
        target = low / factor if side == "low" else high * factor
    else:
        half = (high - low) / 2
        target = low - half if side == "low" else high + half
    if s.type == "int":
        target = math.floor(target) if side == "low" else math.ceil(target)
        if target == bound:
            target = bound - 1 if side == "low" else bound + 1
    else:
        target = _round_sig(target)

    def ok(v: float) -> bool:
        value: Value = int(v) if s.type == "int" else v
        return value_problem(raw_params, dim.path, value) is None

    if ok(target):
        return target, ""
    # Pull back towards the current bound: the furthest value the params checks accept.
    reason = value_problem(raw_params, dim.path, int(target) if s.type == "int" else target) or ""
    good, bad = bound, target
    for _ in range(40):
        mid = (good + bad) / 2
        if s.type == "int":
            mid = math.floor(mid) if side == "high" else math.ceil(mid)
            if mid in (good, bad):
                break
        if ok(mid):
            good = mid
        else:
            bad = mid
    if s.type != "int":
        # A readable number, rounded towards the current bound so that it stays valid.
        for digits in range(2, 8):
            rounded = _round_towards(good, bound, digits)
            if ok(rounded) and rounded != bound:
                good = rounded
                break
    if abs(good - bound) <= 1e-12 * max(1.0, abs(bound)):
        return None, reason
    return good, ""
