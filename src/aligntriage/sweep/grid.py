"""A sweep's grid: which knobs vary, over which values, and how each grid point splits into training-process
settings (PPOConfig fields) and scenario level parameters."""

from __future__ import annotations

import itertools

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import Scenario
from aligntriage.store.files import number_or_text

# The names people type for training-process knobs, and the PPOConfig field each sets.
TRAINING_KNOBS = {
    "dist": "dist",
    "steps": "total_steps",
    "width": "width",
    "depth": "depth",
    "network": "network",
    "ent_coef": "ent_coef",
    "gamma": "gamma",
    "lr": "lr",
    "envs": "num_envs",
    "rollout": "rollout",
    "epochs": "epochs",
    "curriculum": "curriculum",
    "curate_from": "curate_from",
    "replay_prob": "replay_prob",
    "score_every": "score_every",
    "buffer_size": "buffer_size",
}


def _knob(key: str, scenario: Scenario) -> str:
    """The grid key in canonical form: a training knob (``dist``, ``width``…) or ``level.NAME`` for a level
    parameter. ``train.`` and ``level.`` prefixes settle names that are both (coinrun's level ``width``)."""
    key = key.strip().replace("-", "_")
    level_names = [k.replace("-", "_") for k in scenario.params]
    valid = list(TRAINING_KNOBS) + [k for k in level_names if k not in TRAINING_KNOBS] + \
        [f"level.{k}" for k in level_names if k in TRAINING_KNOBS]
    if key.startswith("train.") and key[6:] in TRAINING_KNOBS:
        return key[6:]
    if key.startswith("level.") and key[6:] in level_names:
        return key
    if key in TRAINING_KNOBS and key in level_names:
        raise AligntriageError(f"grid key '{key}' is both a training knob and a level parameter of "
                               f"'{scenario.name}'; write train.{key} or level.{key}")
    if key in TRAINING_KNOBS:
        return key
    if key in level_names:
        return f"level.{key}"
    raise UnknownName("grid key", key, valid, f"scenario '{scenario.name}'")


def parse_grid(items: list[str], scenario: Scenario) -> dict[str, list]:
    """``KEY=V1,V2,...`` options into an ordered {knob: values}; knobs are training knobs or level parameters
    (kept as ``level.NAME``)."""
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise AligntriageError(f"grid '{item}' must look like KEY=V1,V2,...")
        raw_key, raw = item.split("=", 1)
        key = _knob(raw_key, scenario)
        if key in grid:
            raise AligntriageError(f"grid key '{raw_key}' given twice")
        values = [number_or_text(v.strip()) for v in raw.split(",") if v.strip()]
        if not values:
            raise AligntriageError(f"grid key '{raw_key}' has no values")
        if key == "dist":
            for dist in values:
                scenario.distribution(str(dist))
        grid[key] = values
    return grid


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in the order the user gave them (the last key varies fastest)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def split_point(values: dict) -> tuple[dict, dict]:
    """(training settings as PPOConfig fields, level parameters) of one grid point."""
    training = {TRAINING_KNOBS[k]: v for k, v in values.items() if k in TRAINING_KNOBS}
    level = {k.removeprefix("level."): v for k, v in values.items() if k.startswith("level.")}
    return training, level


def point_label(values: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def point_folder(index: int, values: dict) -> str:
    """A folder name per point: its index and values, with only characters safe in any file system."""
    text = "-".join(f"{k}={v}" for k, v in values.items())
    safe = "".join(c if c.isalnum() or c in "=.-_" else "_" for c in text)
    return f"point-{index:03d}-{safe}"[:120]
