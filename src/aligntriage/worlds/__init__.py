"""The scenario registry: built-in scenarios by name, plus user scenario files loaded by path.

A scenario file is one Python file defining ``build(**params) -> Scenario`` (and optionally ``PARAMS``: each level
parameter's ``Param`` spec, or just its default, whose type then sets the parameter's). Built-in scenarios are files
in this folder written the same way. ``build`` always receives every parameter, checked and cast to its type.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
from typing import Any

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import Param, Scenario

_BUILTIN = {
    "coinrun": "aligntriage.worlds.coinrun",
    "maze": "aligntriage.worlds.maze",
    "qa-kidnap": "aligntriage.worlds.qa_kidnap",
    "keys-chests": "aligntriage.worlds.keys_chests",
    "monster": "aligntriage.worlds.monster",
    "follow-leader": "aligntriage.worlds.follow_leader",
    "tomato-watering": "aligntriage.worlds.tomato_watering",
    "absent-supervisor": "aligntriage.worlds.absent_supervisor",
    "rare-oversight": "aligntriage.worlds.rare_oversight",
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


def _source(name: str) -> tuple:
    """What identifies a scenario's code: a built-in's name, or a file's absolute path and version (so a relative
    path means the same file from any working directory, and an edited file is loaded afresh)."""
    if not name.endswith(".py"):
        return (name,)
    path = Path(name).expanduser().resolve()
    stat = path.stat() if path.is_file() else None
    return (str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)


def scenario_module(name: str):
    """The module behind a scenario name, or behind a path to a user's scenario file."""
    return _module(name if not name.endswith(".py") else str(Path(name)), _source(name))


@functools.lru_cache(maxsize=64)
def _module(name: str, source: tuple):
    if name.endswith(".py"):
        return _load_file(Path(name))
    if name in EXTERNAL and name in _BUILTIN and name not in scenario_names():
        raise AligntriageError(f"scenario '{name}' needs the {EXTERNAL[name]} package: "
                               "pip install 'aligntriage[interop]'")
    if name not in scenario_names():
        raise UnknownName("scenario", name, scenario_names())
    return importlib.import_module(_BUILTIN[name])


def param_specs(name: str) -> dict[str, Param]:
    """Every level parameter of a scenario with its type, range and default."""
    specs = getattr(scenario_module(name), "PARAMS", None) or {}
    if not isinstance(specs, dict):
        raise AligntriageError(f"scenario '{name}': PARAMS must be a dict of name: default, got "
                               f"{type(specs).__name__}")
    return {key: Param.of(spec) for key, spec in specs.items()}


def level_params(name: str, **params: Any) -> dict[str, Any]:
    """Every level parameter's value (defaults, then the overrides), each checked against its spec and cast."""
    specs = param_specs(name)
    unknown = [key for key in params if key not in specs]
    if unknown:
        raise UnknownName("level parameter", unknown[0], specs, f"scenario '{name}'")
    values = {key: spec.default for key, spec in specs.items()} | params
    return {key: specs[key].check(key, value, f"scenario '{name}'") for key, value in values.items()}


def get_scenario(name: str, **params: Any) -> Scenario:
    """Build a scenario by name (or ``path/to/file.py``) with optional level-parameter overrides."""
    return _get_scenario(name, tuple(sorted(level_params(name, **params).items())), _source(name))


@functools.lru_cache(maxsize=64)
def _get_scenario(name: str, params: tuple, source: tuple) -> Scenario:
    module = scenario_module(name)
    user_file = name.endswith(".py")
    try:
        scenario = module.build(**dict(params))
    except AligntriageError:
        raise
    except Exception as exc:  # a built-in rejects values its Param ranges allow; a user's build() may raise anything
        if not user_file and not isinstance(exc, (TypeError, ValueError)):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise AligntriageError(f"scenario '{name}' build() failed: {type(exc).__name__}: {first}"
                               if user_file else f"scenario '{name}' rejected its parameters: {first}") from exc
    if not isinstance(scenario, Scenario):
        raise AligntriageError(f"scenario '{name}': build() returned {type(scenario).__name__}, not a Scenario")
    return scenario
