"""Typed records of the diagnosis, and their JSON form (used only at the edges: files, ``--json``).

The evidence keeps every per-level figure as an array, so that every summary (all levels, the levels where the
goals diverge, one seed, the seeds pooled, a bootstrap resample) is recomputed from the same exact numbers rather
than stored twice.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class Estimate(NamedTuple):
    """A mean with its 95% interval over the unit of replication named by ``over`` ('levels' or 'seeds')."""

    mean: float
    low: float
    high: float
    n: int
    over: str = "levels"


# ----------------------------------------------------------------------------------------------------------------
# what one policy does on the diagnosed levels, exactly


@dataclass(frozen=True)
class Behaviour:
    """Exact figures of one policy on each of the L diagnosed levels (expected over its episode).

    ``R`` and ``terms`` are expected discounted returns from the level's start over the episode's horizon;
    ``outcomes`` [L, C] is the probability of each outcome category (which candidate goal's event comes first,
    else terminated early, else timed out); ``reached`` [L, G] the probability each goal is reached at least once;
    ``harms`` the probability each harm term of U (catastrophic or not) is incurred at least once.
    """

    R: np.ndarray
    terms: dict[str, np.ndarray]
    outcomes: np.ndarray
    reached: np.ndarray
    harms: dict[str, np.ndarray]

    @property
    def U(self) -> np.ndarray:
        return sum(self.terms.values(), np.zeros_like(self.R))

    def scope(self, names) -> np.ndarray:
        """The value of the sum of the named U terms."""
        return sum((self.terms[name] for name in names), np.zeros_like(self.R))

    @staticmethod
    def mean(behaviours: list[Behaviour]) -> Behaviour:
        """Per level, the mean over seeds: the behaviour of 'pick a seed at random, then follow it'."""
        first = behaviours[0]

        def avg(get):
            return np.mean([get(b) for b in behaviours], axis=0)

        return Behaviour(avg(lambda b: b.R), {t: avg(lambda b, t=t: b.terms[t]) for t in first.terms},
                         avg(lambda b: b.outcomes), avg(lambda b: b.reached),
                         {t: avg(lambda b, t=t: b.harms[t]) for t in first.harms})


@dataclass(frozen=True)
class References:
    """Agent-independent exact figures on the diagnosed levels: the optima, the uniform-random policy (the bottom
    of every normalised range, and the chance rates of the outcomes), and which levels disambiguate the goals."""

    r_optimal: Behaviour
    u_optimal: Behaviour
    random: Behaviour
    scope_optimum: dict[str, np.ndarray]  # partition -> [L] the best value of its reward-scope terms
    disambiguating: np.ndarray  # [L] bool
    epic: dict[str, float | None]  # partition -> EPIC(R, U on its scope); None where it cannot be computed


@dataclass(frozen=True)
class Inference:
    """Goal inference for one seed on the first L_i diagnosed levels.

    For each hypothesis (each candidate goal, R itself, then ``random``) ``log_likelihood`` [L_i, H, T] is the
    expected log-likelihood of one episode's informative actions under that hypothesis's soft-optimal policy at
    each temperature of the grid (the summary picks, per hypothesis, the temperature that fits the OTHER half of the
    levels, weighted by the episodes it explains); ``own`` [L_i] is the same for the agent's own policy (the
    ceiling: the predictable part of its behaviour) and ``steps`` [L_i] the expected number of informative steps
    (where the hypotheses' optimal actions differ, so indifferent states do not dilute the figure).
    """

    hypotheses: tuple[str, ...]
    log_likelihood: np.ndarray
    own: np.ndarray
    steps: np.ndarray
    temperatures: np.ndarray  # [T]: the grid, relative to each hypothesis's value range
    discovered: str | None = None  # the goal discovery names (its column is "discovered"), None if not run


@dataclass(frozen=True)
class Evidence:
    """Everything measured about a policy (one or several seeds) on one distribution's levels."""

    dist: str
    levels: int
    states: int
    categories: tuple[str, ...]
    goals: tuple[str, ...]
    catastrophic: tuple[str, ...]  # the harm terms that are catastrophic
    references: References
    seeds: tuple[Behaviour, ...]
    inference: tuple[Inference, ...]

    @property
    def num_seeds(self) -> int:
        return len(self.seeds)

    def seed(self, index: int) -> Evidence:
        """The evidence of one seed alone."""
        return dataclasses.replace(self, seeds=(self.seeds[index],), inference=(self.inference[index],))

    @property
    def disambiguating_fraction(self) -> float:
        return float(self.references.disambiguating.mean()) if self.levels else 0.0


# ----------------------------------------------------------------------------------------------------------------
# JSON at the edges


def encode(value: Any):
    """A JSON-able form of a record (arrays as lists, NaN as None)."""
    if dataclasses.is_dataclass(value):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {name: encode(getattr(value, name)) for name in value._fields}
    if isinstance(value, np.ndarray):
        return encode(value.tolist())
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def decode(kind, data):
    """The inverse of ``encode`` for a type annotation ``kind`` (records, arrays, dicts, tuples, optionals)."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return None if data is None else decode(options[0], data)
    if kind is np.ndarray:
        return _array(data)
    if kind is float:
        return float("nan") if data is None else float(data)
    if kind in (int, str, bool):
        return data
    if origin is dict:
        _, value_kind = typing.get_args(kind)
        return {k: decode(value_kind, v) for k, v in data.items()}
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in data)
        return tuple(decode(a, v) for a, v in zip(args, data))
    if origin is list:
        return [decode(typing.get_args(kind)[0], v) for v in data]
    if dataclasses.is_dataclass(kind) or (isinstance(kind, type) and issubclass(kind, tuple)):
        hints = typing.get_type_hints(kind)
        names = [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else kind._fields
        return kind(**{name: decode(hints[name], data[name]) for name in names if name in data})
    return data


def _array(data) -> np.ndarray:
    array = np.array(data, dtype=object)
    if array.size and all(isinstance(v, bool) for v in array.flat):
        return array.astype(bool)
    return np.where(np.equal(array, None), np.nan, array).astype(np.float64)
