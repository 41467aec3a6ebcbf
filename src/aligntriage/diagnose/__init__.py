"""Diagnosis: exact evidence, verdicts per partition with their probabilities, and the threat-model reading."""

from aligntriage.diagnose.engine import Diagnosis, diagnose, diagnose_many
from aligntriage.diagnose.evidence import Settings
from aligntriage.diagnose.kinds import KINDS, VERDICTS
from aligntriage.diagnose.verdict import Tolerances

__all__ = ["Diagnosis", "KINDS", "Settings", "Tolerances", "VERDICTS", "diagnose", "diagnose_many"]
