"""Exact solutions of small levels: enumerate the reachable MDP, then (soft) value iteration."""

from aligntriage.solve.enumerate import MDP, MDPBatch, enumerate_levels, enumerate_mdp, stack_mdps
from aligntriage.solve.value import Solution, evaluate, solve

__all__ = ["MDP", "MDPBatch", "Solution", "enumerate_levels", "evaluate", "enumerate_mdp", "solve", "stack_mdps"]
