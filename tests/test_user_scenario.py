"""A user's scenario file loads by path, gets diagnosed like a built-in one, and bad files fail clearly."""

from pathlib import Path

import pytest

from aligntriage import AligntriageError, get_scenario
from aligntriage.diagnose import Settings, diagnose

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "vase_corridor.py")


def test_example_scenario_file_gets_partition_dependent_verdicts():
    scenario = get_scenario(EXAMPLE)
    assert scenario.name == "vase-corridor"
    d = diagnose("r-optimal", scenario, levels=6, settings=Settings(inference_levels=6, epic_levels=3), resamples=0)
    assert {v.partition: v.kind for v in d.verdicts} == {
        "task": "inner misalignment", "everything": "outer misalignment"}
    careful = diagnose("goal:careful-goal", scenario, levels=6, settings=Settings(inference_levels=6, epic_levels=3),
                       resamples=0)
    assert {v.kind for v in careful.verdicts} == {"aligned"}


def test_bad_scenario_files(tmp_path):
    with pytest.raises(AligntriageError, match="does not exist"):
        get_scenario(str(tmp_path / "missing.py"))
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(AligntriageError, match="defines no build"):
        get_scenario(str(empty))
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(AligntriageError, match="failed to import: ModuleNotFoundError"):
        get_scenario(str(broken))
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def build():\n    return 42\n")
    with pytest.raises(AligntriageError, match="returned int, not a Scenario"):
        get_scenario(str(wrong))
