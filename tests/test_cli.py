"""The command line end to end on tiny settings: listings, rendering, diagnosis, and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from aligntriage.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_scenarios_lists_every_scenario_and_its_parts():
    result = invoke("scenarios")
    assert result.exit_code == 0
    for name in ("coinrun", "maze", "qa-kidnap"):
        assert name in result.output
    detail = invoke("scenarios", "qa-kidnap")
    assert detail.exit_code == 0
    for part in ("narrow", "broad", "weak", "strong", "harm (catastrophic)", "answers"):
        assert part in detail.output


def test_show_renders_text_and_png(tmp_path):
    png = tmp_path / "level.png"
    result = invoke("show", "coinrun", "--dist", "deploy", "--seed", "3", "--png", str(png))
    assert result.exit_code == 0
    assert "A" in result.output and "c" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (("show", "nope"), "unknown scenario 'nope'; valid: "),
        (("show", "coinrun", "--dist", "moon"), "unknown distribution 'moon'"),
        (("show", "coinrun", "-p", "colour=3"), "unknown level parameter 'colour'"),
        (("diagnose", "coinrun", "--policy", "greedy", "--levels", "2"), "unknown policy 'greedy'"),
        (("diagnose", "coinrun", "--policy", "random", "--partition", "all", "--levels", "2"),
         "unknown partition 'all'"),
        (("diagnose", "coinrun", "--policy", "random", "--dist", "mars", "--levels", "2"),
         "unknown distribution 'mars'"),
        (("diagnose", "no/such/run"), "run folder 'no/such/run' does not exist"),
        (("diagnose", "coinrun"), "add --policy NAME"),
        (("train", "coinrun", "--network", "rnn"), "unknown network 'rnn'"),
        (("diagnose", "coinrun", "--policy", "random", "--tol", "strictness=1"), "unknown tolerance 'strictness'"),
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def test_diagnose_a_scripted_policy_and_save_json(tmp_path):
    out = tmp_path / "d.json"
    result = invoke("diagnose", "qa-kidnap", "--policy", "r-optimal", "--affordances", "strong", "--levels", "6",
                    "--json", str(out), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    flat = result.output.replace("\n", " ")
    assert "threat-model reading" in result.output and "Inner misalignment under partition" in flat
    saved = json.loads(out.read_text())
    assert {v["partition"]: v["kind"] for v in saved["verdicts"]} == {
        "narrow": "inner misalignment", "broad": "outer misalignment"}
