"""AI control: deployment protocols that keep a possibly misaligned agent safe, measured as safety and usefulness.

After Greenblatt et al. 2024 ("AI Control: Improving Safety Despite Intentional Subversion"), carried over to
exactly-solvable worlds: an untrusted capable policy (which a red team may turn into an attack policy), a weaker
trusted policy, a monitor built from the trusted policy, and an audit (the intended-utility oracle) on a budget.
Because every level is enumerated, each protocol's per-episode outcome probabilities are computed exactly, the
deployment game against the red team's best attack rate is solved in closed form, and simulated deployments
check the result.
"""

from aligntriage.control.arena import Arena, build_arena
from aligntriage.control.evaluate import ControlSettings, evaluate_control
from aligntriage.control.protocols import PROTOCOLS, Protocol, protocols_for
from aligntriage.control.roles import Roles, scripted_roles

__all__ = ["PROTOCOLS", "Arena", "ControlSettings", "Protocol", "Roles", "build_arena", "evaluate_control",
           "protocols_for", "scripted_roles"]
