"""aligntriage: tell outer misalignment, inner misalignment and capability failure apart, with evidence.

The vocabulary follows the seed discussion: a reward provision process R trains the agent, an intended utility U
(named terms, hidden from the agent) says what we want, and a partition declares which U terms the reward is
responsible for; the rest are the training process's job.
"""

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.interop.registration import register_all
from aligntriage.scenario import (
    Affordances,
    Distribution,
    Goal,
    Partition,
    Scenario,
    Term,
    World,
)
from aligntriage.worlds import get_scenario, scenario_names

register_all()  # gymnasium ids aligntriage/<scenario>-v0

__all__ = [
    "AligntriageError",
    "UnknownName",
    "Affordances",
    "Distribution",
    "Goal",
    "Partition",
    "Scenario",
    "Term",
    "World",
    "get_scenario",
    "scenario_names",
]
__version__ = "0.1.0"
