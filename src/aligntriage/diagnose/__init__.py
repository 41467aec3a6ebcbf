"""Diagnosis: evidence, verdicts per partition, and the threat-model reading."""

from aligntriage.diagnose.engine import Diagnosis, diagnose, diagnose_many
from aligntriage.diagnose.evidence import Settings
from aligntriage.diagnose.verdict import VERDICTS, Tolerances

__all__ = ["Diagnosis", "Settings", "Tolerances", "VERDICTS", "diagnose", "diagnose_many"]
