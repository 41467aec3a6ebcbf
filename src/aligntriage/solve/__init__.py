"""Exact solutions of small levels: enumerate the reachable MDP, then (soft) value iteration."""

from aligntriage.solve.enumerate import MDP, enumerate_mdp
from aligntriage.solve.value import Solution, solve

__all__ = ["MDP", "Solution", "enumerate_mdp", "solve"]
