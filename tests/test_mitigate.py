"""``aligntriage mitigate``: a diagnosed run retrained with each intervention, before and after, end to end."""

import json

import pytest
from typer.testing import CliRunner

from aligntriage.cli.main import app
from aligntriage.store.folder import RunFolder

runner = CliRunner()
TINY = ["-p", "height=3", "-p", "width=6", "-p", "horizon=20"]


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory):
    run = tmp_path_factory.mktemp("mitigate") / "run"
    trained = runner.invoke(app, ["train", "coinrun", *TINY, "--steps", "4096", "--envs", "16", "--seeds", "2",
                                  "--out", str(run)])
    assert trained.exit_code == 0, trained.output
    diagnosed = runner.invoke(app, ["diagnose", str(run), "--levels", "6", "--resamples", "5"])
    assert diagnosed.exit_code == 0, diagnosed.output
    return run


def test_mitigate_end_to_end(diagnosed, tmp_path):
    out = tmp_path / "fix"
    result = runner.invoke(app, ["mitigate", str(diagnosed), "--try", "curriculum=dr", "--try", "reward+coin:2",
                                 "--seeds", "1", "--resamples", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(RunFolder(out).file(RunFolder.MITIGATION).read_text())
    assert [r["intervention"] for r in saved["rows"]] == ["before (the diagnosed run)", "curriculum=dr",
                                                         "reward+coin:2"]
    assert saved["seeds"] == 1 and saved["levels"] == 6
    assert all(0.0 <= r["proxy_rate"]["mean"] <= 1.0 for r in saved["rows"])
    patched = RunFolder(out / "mitigate-reward+coin-2").record()
    assert patched.extra["reward_patch"] == {"coin": 2.0} and patched.ppo.seeds == 1
    assert RunFolder(out).record().kind == "mitigate"
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "What changed it" in (out / "report.html").read_text()


@pytest.mark.parametrize("tries, message", [
    (["--try", "patience=3"], "unknown intervention 'patience=3'; valid: curriculum=NAME[@DIST], reward+TERM"),
    (["--try", "reward+kindness"], "unknown utility term 'kindness'"),
    (["--try", "curriculum=magic"], "unknown curriculum 'magic'"),
    (["--try", "reward+coin:-1"], "the weight after ':' must be a number > 0, got '-1'"),
])
def test_bad_interventions_are_one_line_errors(diagnosed, tmp_path, tries, message):
    result = runner.invoke(app, ["mitigate", str(diagnosed), *tries, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_a_run_without_a_diagnosis_is_a_one_line_error(tmp_path):
    run = tmp_path / "undiagnosed"
    trained = runner.invoke(app, ["train", "coinrun", *TINY, "--steps", "2048", "--envs", "16", "--out", str(run)])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["mitigate", str(run), "--try", "curriculum=dr", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "has no diagnosis on 'deploy'" in result.output
    assert len(result.output.strip().splitlines()) == 1
