"""Sweeps: seeds x knobs, each grid point trained (seeds vmapped) and diagnosed, locally or on Ray."""

from aligntriage.sweep.grid import TRAINING_KNOBS, grid_points, parse_grid
from aligntriage.sweep.plan import load_plan, plan_sweep, run_sweep

__all__ = ["TRAINING_KNOBS", "grid_points", "load_plan", "parse_grid", "plan_sweep", "run_sweep"]
