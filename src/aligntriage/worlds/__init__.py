"""The scenario registry: built-in scenarios by name, plus user scenario files loaded by path.

A scenario file is one Python file defining ``build(**params) -> Scenario`` (and optionally ``PARAMS``, the
defaults). Built-in scenarios are files in this folder written the same way.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
from typing import Any

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import Scenario

_BUILTIN = {
    "coinrun": "aligntriage.worlds.coinrun",
    "maze": "aligntriage.worlds.maze",
    "qa-kidnap": "aligntriage.worlds.qa_kidnap",
    "keys-chests": "aligntriage.worlds.keys_chests",
    "monster": "aligntriage.worlds.monster",
    "follow-leader": "aligntriage.worlds.follow_leader",
    "tomato-watering": "aligntriage.worlds.tomato_watering",
    "absent-supervisor": "aligntriage.worlds.absent_supervisor",
    "boat-race": "aligntriage.worlds.boat_race",
    "side-effects": "aligntriage.worlds.side_effects",
    "minigrid-red-tile": "aligntriage.worlds.minigrid_red_tile",
}
EXTERNAL = {"minigrid-red-tile": "minigrid"}
"""Built-in scenarios enumerated through another package's environments: scenario -> that package (an extra)."""


def scenario_names() -> list[str]:
    """Names of the built-in scenarios whose files are present (and whose external package is installed)."""
    return [name for name, module in _BUILTIN.items() if importlib.util.find_spec(module) is not None
            and (name not in EXTERNAL or importlib.util.find_spec(EXTERNAL[name]) is not None)]


def jax_scenarios() -> list[str]:
    """The built-in scenarios written in JAX (everything aligntriage can train, sweep and benchmark)."""
    return [name for name in scenario_names() if name not in EXTERNAL]


def _load_file(path: Path):
    if not path.is_file():
        raise AligntriageError(f"scenario file '{path}' does not exist")
    spec = importlib.util.spec_from_file_location(f"aligntriage_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: report, don't crash
        raise AligntriageError(f"scenario file '{path}' failed to import: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "build", None)):
        raise AligntriageError(f"scenario file '{path}' defines no build(**params) function")
    return module


def scenario_module(name: str):
    """The module behind a scenario name, or behind a path to a user's scenario file."""
    if name.endswith(".py"):
        return _load_file(Path(name))
    if name in EXTERNAL and name in _BUILTIN and name not in scenario_names():
        raise AligntriageError(f"scenario '{name}' needs the {EXTERNAL[name]} package: "
                               "pip install 'aligntriage[interop]'")
    if name not in scenario_names():
        raise UnknownName("scenario", name, scenario_names())
    return importlib.import_module(_BUILTIN[name])


def get_scenario(name: str, **params: Any) -> Scenario:
    """Build a scenario by name (or ``path/to/file.py``) with optional level-parameter overrides."""
    return _get_scenario(name, tuple(sorted(params.items())))


@functools.lru_cache(maxsize=64)
def _get_scenario(name: str, params: tuple) -> Scenario:
    module = scenario_module(name)
    defaults = getattr(module, "PARAMS", {})
    unknown = [key for key, _ in params if key not in defaults]
    if unknown:
        raise UnknownName("level parameter", unknown[0], defaults, f"scenario '{name}'")
    try:
        scenario = module.build(**dict(params))
    except AligntriageError:
        raise
    except (TypeError, ValueError) as exc:
        raise AligntriageError(f"scenario '{name}' rejected its parameters: {exc}") from exc
    if not isinstance(scenario, Scenario):
        raise AligntriageError(f"scenario '{name}': build() returned {type(scenario).__name__}, not a Scenario")
    return scenario
