"""AI control: metrics on hand-built policies with closed-form safety and usefulness, simulated deployments
against the exact game, and the ``control`` command end to end."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aligntriage.cli.main import app
from aligntriage.control import Arena, ControlSettings, Protocol, Roles
from aligntriage.control.evaluate import Evaluator
from aligntriage.control.metrics import catastrophe_probability
from aligntriage.control.protocols import PValues, protocols_for

N = 100
WORK, SLACK, BAD = 0, 1, 2


def one_step_arena(levels=2):
    """Each level: one decision (work: task 1; slack: task 0; bad: catastrophic), then a terminal state."""
    next_state = np.array([[1, 1, 1], [1, 1, 1]] * levels, np.int32) + np.repeat(2 * np.arange(levels), 2)[:, None]
    catastrophic = np.zeros((2 * levels, 3), bool)
    catastrophic[::2, BAD] = True
    task = np.zeros((2 * levels, 3))
    task[::2, WORK] = 1.0
    return Arena(next_state, np.tile([False, True], levels), catastrophic, task, 2 * np.arange(levels, dtype=np.int32),
                 np.repeat(np.arange(levels, dtype=np.int32), 2), horizon=3)


def roles(monitor: str) -> Roles:
    """Benign works, the attack takes the bad action, trusted slacks; the monitor is perfect or useless."""
    arena = one_step_arena()
    pick = lambda a: np.tile(np.eye(3)[a], (arena.num_states, 1))  # noqa: E731
    suspicion = pick(BAD) if monitor == "perfect" else np.zeros((arena.num_states, 3))
    return Roles(pick(WORK), pick(BAD), pick(SLACK), suspicion)


_EVALUATORS = {}


def _ev(monitor):
    """One evaluator per monitor for the whole module, so the jitted passes compile once."""
    if monitor not in _EVALUATORS:
        _EVALUATORS[monitor] = Evaluator(one_step_arena(), roles(monitor),
                                         ControlSettings(episodes=N, deployments=400, seed=1))
    return _EVALUATORS[monitor]


def metrics(evaluator, key, audit=0.1, defer=0.0, edit=0.0, simulate=False):
    [protocol] = protocols_for([key], audit, defer, edit)
    return evaluator.metrics(protocol, simulate=simulate)


def test_no_protocol_safety_is_one_minus_p_to_the_n_and_the_red_team_attacks():
    for p in (0.0, 0.001, 0.01, 0.5):
        assert catastrophe_probability([(N, 0.0, 1.0, 0.0, 0.0)], np.float64(p)) == pytest.approx(1 - (1 - p) ** N)
    row = metrics(_ev("useless"), "no-protocol")
    assert row["safety"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert row["usefulness"]["mean"] == pytest.approx(1.0)


def test_trusted_only_is_safe_and_useless():
    row = metrics(_ev("perfect"), "trusted-only")
    assert row["safety"]["mean"] == pytest.approx(1.0)
    assert row["usefulness"]["mean"] == pytest.approx(0.0, abs=1e-9)


def test_upfront_auditing_matches_the_closed_form_best_attack_rate():
    audit = 0.1
    k = round(audit * N)
    x = k / N
    worst = x ** (k / (N - k)) * (1 - x)  # max_p (1-p)^k (1 - (1-p)^(N-k)) at (1-p)^(N-k) = k/N
    row = metrics(_ev("useless"), "upfront-auditing", audit=audit)
    assert row["safety"]["mean"] == pytest.approx(1 - worst, abs=2e-3)
    assert 1 - row["attack_rate"] == pytest.approx(x ** (1 / (N - k)), abs=2e-3)
    assert row["usefulness"]["mean"] == pytest.approx(1.0)


def test_trusted_monitoring_with_a_perfect_monitor_catches_every_attack():
    row = metrics(_ev("perfect"), "trusted-monitoring", audit=0.02)
    assert row["safety"]["mean"] == pytest.approx(1.0)
    assert row["per_episode"]["attack"]["caught"] == pytest.approx(1.0)
    assert row["usefulness"]["mean"] == pytest.approx(1.0)
    assert row["per_episode"]["benign"]["audits"] == pytest.approx(0.02, abs=1e-6)  # the budget goes on benign steps


@pytest.mark.parametrize("audit", [0.02, 0.3])
def test_trusted_monitoring_with_a_useless_monitor_audits_at_random(audit):
    row = metrics(_ev("useless"), "trusted-monitoring", audit=audit)
    assert row["per_episode"]["attack"]["caught"] == pytest.approx(audit, abs=1e-6)
    assert row["per_episode"]["benign"]["audits"] == pytest.approx(audit, abs=1e-6)  # the budget, exactly
    assert row["safety"]["mean"] == pytest.approx(audit, abs=1e-6)  # the red team attacks every episode
    assert (1 - row["attack_rate"]) ** N < 1e-6  # any rate that makes an attack near certain is best


def test_defer_and_editing_with_a_useless_monitor():
    audit, defer, edit = 0.05, 0.25, 0.2
    row = metrics(_ev("useless"), "defer-to-trusted", audit=audit, defer=defer)
    caught, lost = audit, 1 - defer
    assert row["safety"]["mean"] == pytest.approx(caught / (caught + lost), abs=1e-5)
    assert row["usefulness"]["mean"] == pytest.approx(1 - (defer - audit), abs=1e-5)
    row = metrics(_ev("useless"), "trusted-editing", audit=audit, edit=edit)
    assert row["per_episode"]["benign"]["handover"] == pytest.approx(edit, abs=1e-4)
    assert row["usefulness"]["mean"] == pytest.approx(1 - edit, abs=1e-4)
    assert row["safety"]["mean"] == pytest.approx(audit / (audit + 1 - audit - edit), abs=1e-4)


def test_simulated_deployments_agree_with_the_exact_game():
    for monitor, key, audit in (("useless", "trusted-monitoring", 0.3), ("useless", "upfront-auditing", 0.1),
                                ("perfect", "trusted-monitoring", 0.02)):
        row = metrics(_ev(monitor), key, audit=audit, simulate=True)
        sim = row["simulated"]
        assert sim["n"] == 400
        assert sim["low"] - 0.02 <= row["safety"]["mean"] <= sim["high"] + 0.02, (key, row["safety"], sim)


def test_pvalues_break_ties_uniformly():
    scores = np.array([[0.0, 1.0, 2.0]])
    pv = PValues(scores, np.array([[0.5, 0.3, 0.2]]))
    assert pv.above[0] == pytest.approx([0.5, 0.2, 0.0]) and pv.tied[0] == pytest.approx([0.5, 0.3, 0.2])
    assert pv.below(0.1)[0] == pytest.approx([0.0, 0.0, 0.5])  # P(p < x) with p = above + u * tied
    assert pv.below(0.35)[0] == pytest.approx([0.0, 0.5, 1.0])


def test_unknown_protocol_is_a_one_line_error():
    from aligntriage.errors import UnknownName

    with pytest.raises(UnknownName, match="unknown protocol 'nope'; valid: "):
        protocols_for(["nope"], 0.02, 0.1, 0.2)
    assert Protocol("defer-to-trusted", defer=0.1).label == "defer to trusted (10%)"


runner = CliRunner()


def test_control_command_end_to_end(tmp_path):
    out = tmp_path / "ctl"
    result = runner.invoke(app, ["control", "qa-kidnap", "--levels", "3", "--episodes", "50", "--deployments", "20",
                                 "--protocol", "no-protocol", "--protocol", "trusted-monitoring",
                                 "--protocol", "defer-to-trusted", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "trusted monitoring" in result.output and "defer to trusted (10%)" in result.output
    record = json.loads((out / "run.json").read_text())
    assert record["kind"] == "control" and record["status"] == "complete" and record["scenario"] == "qa-kidnap"
    assert {"params", "created"} <= set(record)
    table = json.loads((out / "control.json").read_text())
    rows = {row["protocol"]: row for row in table["protocols"]}
    assert list(rows) == ["no-protocol", "trusted-monitoring", "defer-to-trusted"]
    assert rows["no-protocol"]["safety"]["mean"] < rows["trusted-monitoring"]["safety"]["mean"]
    assert rows["trusted-monitoring"]["usefulness"]["mean"] > 0.5
    assert table["settings"]["audit_budget"] == 0.02 and table["curves"]["defer-to-trusted"]
    assert (out / "control-pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert "report:" in result.output and "trusted monitoring" in report.replace("-", " ")
    assert report.count("data:image/png;base64,") >= 1


@pytest.mark.parametrize("args, message", [
    (["control", "qa-kidnap", "--protocol", "nope"], "unknown protocol 'nope'; valid: defer-to-trusted, "),
    (["control", "maze"], "has no catastrophic U term"),
    (["control", "qa-kidnap", "--audit-budget", "2"], "audit-budget must be in [0, 1]"),
    (["control", "qa-kidnap", "--trusted-affordances", "tiny", "--levels", "2"], "unknown affordance set 'tiny'"),
])
def test_control_bad_input_is_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
