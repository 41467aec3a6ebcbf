"""The HTML report on the typed diagnosis: every section and figure, self-contained (data URIs only), user strings
escaped, the verdict's kind/advice/colour read from the kinds table, the deciding margins and the cited row, the
report's levels being the diagnosis's own, exact visitation, no recompilation when warm, unfinished training and
unreadable diagnosis files said out loud, and the ``report`` command with its one-line errors."""

import base64
import fcntl
import json
import logging
import shutil
from html import escape
from html.parser import HTMLParser

import jax
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aligntriage import get_scenario
from aligntriage.cli.main import app
from aligntriage.diagnose import diagnose_many
from aligntriage.diagnose.engine import sample_batch
from aligntriage.diagnose.kinds import CAPABILITY, INCONCLUSIVE, INNER, KINDS, MIXED
from aligntriage.diagnose.verdict import row
from aligntriage.report import levels
from aligntriage.report.folder import RunView, training_progress
from aligntriage.report.html import build_report, write_report
from aligntriage.solve.tables import walk
from aligntriage.store import index_run
from aligntriage.store.files import read_json, write_csv, write_json
from aligntriage.store.folder import RunFolder
from aligntriage.train.loop import load_policy, train
from aligntriage.train.ppo import PPOConfig

TINY = {"height": 3, "width": 6, "horizon": 20}
TINY_ARGS = [arg for k, v in TINY.items() for arg in ("-p", f"{k}={v}")]
CONFIG = PPOConfig(total_steps=16 * 16 * 6, seeds=2, num_envs=16, rollout=16, minibatches=2, epochs=2, pool=32,
                   width=16)
RESAMPLES = 20  # enough for a verdict's probability; the default 200 costs half a minute here
HOSTILE = "<script>alert('x')</script>"
FULL_SECTIONS = {"summary", "verdicts", "threats", "evidence", "outcomes", "goals", "values", "where", "episodes",
                 "per-seed", "run", "glossary"}
runner = CliRunner()


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def make_scripted_run(run_dir, note=HOSTILE, metrics=False):
    """A scripted policy's diagnosis run folder, written by the CLI (no training), with a hostile note and
    optionally synthetic training metrics so that every kind of figure appears."""
    cli("diagnose", "coinrun", "--policy", "goal:end-of-level", "--levels", 20, "--resamples", RESAMPLES, *TINY_ARGS,
        "--out", run_dir)
    record = read_json(run_dir / "run.json")
    write_json(run_dir / "run.json", {**record, "note": note})
    if metrics:
        write_csv(run_dir / "metrics.csv", [{"update": u, "seed": 0, "steps": 256 * u, "mean_return": u / 10,
                                             "success_rate": u / 10} for u in range(1, 8)])
    return run_dir


class Page(HTMLParser):
    """Section ids, images, tables and text of a report."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.images, self.tables, self.scripts, self.links, self.text = set(), [], set(), 0, 0, []
        self.ids, self.duplicate_ids = set(), set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.add(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs)
        if attrs.get("id"):
            self.duplicate_ids |= {attrs["id"]} & self.ids
            self.ids.add(attrs["id"])
        if tag == "table" and attrs.get("id"):
            self.tables.add(attrs["id"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.links += 1

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join("".join(self.text).split())


def decode(src):
    header, _, payload = src.partition(",")
    assert header in ("data:image/png;base64", "data:image/gif;base64"), header[:40]
    data = base64.b64decode(payload, validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" or data[:6] in (b"GIF89a", b"GIF87a")
    return data


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny two-seed trained run diagnosed on its training distribution and on deploy, as ``aligntriage run``
    saves it."""
    out = tmp_path_factory.mktemp("report") / "tiny-run"
    train("coinrun", CONFIG, out, params=TINY)
    policies = [load_policy(out, s) for s in range(CONFIG.seeds)]
    results = diagnose_many(policies, get_scenario("coinrun", **TINY), ["train", "deploy"], levels=12,
                            policy_label="trained on train", resamples=RESAMPLES)
    for dist, result in results.items():
        write_json(out / f"diagnosis-{dist}.json", json.loads(result.to_json()))
    return out


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory):
    return make_scripted_run(tmp_path_factory.mktemp("report") / "scripted")


def test_trained_run_report_has_every_section_with_embedded_figures(trained_run):
    path = write_report(trained_run)
    assert path == trained_run / "report.html"
    text = path.read_text()
    page = Page(text)
    assert FULL_SECTIONS | {"training"} <= page.sections
    assert {"verdict-table", "evidence-table", "inference-table", "per-seed-table", "decision-table"} <= page.tables
    assert not page.duplicate_ids
    assert page.scripts == 0 and page.links == 0 and "http://" not in text and "https://" not in text
    assert {decode(img["src"])[:3] for img in page.images} == {b"\x89PN", b"GIF"}
    assert all(img.get("alt") for img in page.images)
    assert len(page.images) >= 11  # curves, outcomes, inference, values, heatmaps, field, 3 episodes x 2
    assert "Could not draw" not in text and "No level pictures" not in text and "Skipped" not in text
    words = page.words
    for heading in ("What went wrong", "Why we think so", "What would change it", "where the goals diverge",
                    "the trained agent (seed 0)"):
        assert heading in words
    assert "incomplete" not in words


def test_scripted_report_reads_kind_advice_margins_and_row_from_the_records(scripted_run):
    text = build_report(scripted_run)
    page = Page(text)
    assert FULL_SECTIONS <= page.sections and "training" not in page.sections
    d = RunView(scripted_run).focus()
    words = page.words
    for v in d.verdicts:
        kind = KINDS[v.kind]
        assert kind.advice in words and kind.glossary in words
        assert f"background:{kind.hex}" in text  # the badge colour comes from the kinds table
        assert row(v.row).cites in words and row(v.row).says in words and v.row in words
        assert v.explanation in words
        for m in v.margins:
            assert m.figure in words
    assert f"{d.evidence.disambiguating_fraction:.0%} of levels" in words


@pytest.mark.parametrize("kind, says", [
    (INCONCLUSIVE, "The two leading candidates are {0} 60% and {1} 40%."),
    (MIXED, "Of the shortfall in U, 70% lies in terms the reward is responsible for (the outer part) and 30% in "
            "terms left to the training process (the inner part)."),
])
def test_inconclusive_and_mixed_verdicts_are_explained(scripted_run, tmp_path, kind, says):
    copy = tmp_path / "uncertain"
    shutil.copytree(scripted_run, copy)
    data = read_json(copy / "diagnosis-deploy.json")
    candidates = {INNER: 0.6, CAPABILITY: 0.4}
    data["verdicts"][0].update(kind=kind, probability=0.6, candidates=candidates, split=[0.7, 0.3])
    write_json(copy / "diagnosis-deploy.json", data)
    words = Page(build_report(copy)).words
    assert says.format(*candidates) in words
    assert KINDS[kind].advice in words
    if kind == INCONCLUSIVE:
        for candidate in candidates:
            assert f"If more evidence shows {candidate} under 'task': {KINDS[candidate].advice}" in words


def test_user_strings_are_escaped(scripted_run):
    text = build_report(scripted_run)
    assert HOSTILE not in text and Page(text).scripts == 0
    assert escape(HOSTILE) in text
    assert "the scripted policy &#x27;goal:end-of-level&#x27;" in text


def test_the_report_draws_the_diagnosis_own_levels(scripted_run):
    d = RunView(scripted_run).focus()
    scenario = RunView(scripted_run).scenario
    picks = levels.choose(d)
    assert picks[0].disambiguating == bool(d.evidence.references.disambiguating[picks[0].index])
    drawn = levels.diagnosed_levels(scenario, d, picks)
    for k, pick in enumerate(picks):
        reference = sample_batch(scenario, pick.dist, d.levels, d.seed).levels
        same = jax.tree.map(lambda a, b, i=pick.index, k=k: np.array_equal(np.asarray(a)[i], np.asarray(b)[k]),
                            reference, drawn)
        assert all(jax.tree.leaves(same)), pick


def test_visitation_is_exact_against_many_sampled_episodes(scripted_run):
    folder = RunView(scripted_run)
    views = levels.draw(folder.scenario, folder.dir, folder.focus())
    exact = levels.visitation(views, views.agent)
    walks = walk(views.batch, views.agent, views.episode.horizon, 4000, jax.random.PRNGKey(1))
    counted = np.zeros(views.batch.num_states)
    np.add.at(counted, walks.state[walks.alive], 1.0)
    np.add.at(counted, walks.final, 1.0)
    counted /= 4000
    np.testing.assert_allclose(exact, counted, atol=0.05)
    lengths = walks.alive.sum(axis=1) + 1
    for k in range(len(views.picks)):
        on_level = walks.level == k
        assert exact[views.states(k)].sum() == pytest.approx(lengths[on_level].mean(), abs=0.05)


def test_a_warm_report_compiles_nothing(scripted_run, caplog):
    build_report(scripted_run)
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        build_report(scripted_run)
    compiles = [r.getMessage() for r in caplog.records if "ompil" in r.getMessage()]
    assert not compiles, compiles


@pytest.mark.parametrize("status, reason", [("running", "stopped without finishing"), ("interrupted", "resume")])
def test_an_unfinished_training_says_how_far_it_got(trained_run, tmp_path, status, reason):
    copy = tmp_path / "unfinished"
    shutil.copytree(trained_run, copy)
    record = read_json(copy / "run.json")
    write_json(copy / "run.json", {**record, "status": status, "steps": 768})
    words = Page(build_report(copy)).words
    assert f"incomplete: trained 768 of {CONFIG.total_steps:,} steps" in words and reason in words
    assert f"status {status}" not in words


def test_a_run_still_training_in_a_live_process_says_so(trained_run, tmp_path):
    copy = tmp_path / "live"
    shutil.copytree(trained_run, copy)
    write_json(copy / "run.json", {**read_json(copy / "run.json"), "status": "running", "steps": 768})
    index_run(copy)  # registered as a training process registers its run
    with open(copy / RunFolder.LOCK, "a") as held:  # ... and claimed, as that process holds its folder
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        words = Page(build_report(copy)).words
    assert f"still training: 768 of {CONFIG.total_steps:,} steps so far" in words and "incomplete" not in words


def test_training_progress_of_a_live_process_and_of_finished_runs():
    record = {"ppo": {"total_steps": 100}, "status": "running", "steps": 40}
    assert training_progress(record, lambda: True) == "still training: 40 of 100 steps so far"
    assert training_progress(record, lambda: False).startswith("incomplete: trained 40 of 100 steps")
    assert training_progress({**record, "status": "complete"}) is None
    assert training_progress({"kind": "diagnose", "status": "complete"}) is None


def test_unreadable_diagnosis_files_are_named_with_the_reason(scripted_run, tmp_path):
    copy = tmp_path / "mixed"
    shutil.copytree(scripted_run, copy)
    write_json(copy / "diagnosis-old.json", {"dist": "old", "train_dist": "train", "evidence": {
        "deploy": {}, "train": {}}, "verdicts": [{"partition": "task", "verdict": "aligned"}]})
    (copy / "diagnosis-broken.json").write_text("{not json")
    write_json(copy / "diagnosis-cut.json", {"dist": "cut", "verdicts": []})
    folder = RunView(copy)
    reasons = {s.file: s.reason for s in folder.skipped}
    assert set(reasons) == {"diagnosis-old.json", "diagnosis-broken.json", "diagnosis-cut.json"}
    assert "from an older aligntriage; diagnose again" in reasons["diagnosis-old.json"]
    assert "not valid JSON" in reasons["diagnosis-broken.json"]
    assert "malformed" in reasons["diagnosis-cut.json"]
    words = Page(build_report(copy)).words
    for file, reason in reasons.items():
        assert f"Skipped {file}: {reason}" in words
    assert list(folder.diagnoses) == ["deploy"]


def test_partial_run_folders_render_what_they_hold(tmp_path):
    run_dir = tmp_path / "partial"
    run_dir.mkdir()
    write_json(run_dir / "run.json", {"kind": "train", "scenario": "<b>nope</b>", "status": "complete"})
    Image.new("RGB", (40, 30), "red").save(run_dir / "extra-figure.png")
    text = build_report(run_dir)
    page = Page(text)
    assert {"summary", "other", "run", "glossary"} <= page.sections
    assert "&lt;b&gt;nope&lt;/b&gt;" in text and "<b>nope</b>" not in text
    assert "extra-figure.png" in text and "holds no diagnosis" in text
    assert [decode(img["src"])[:3] for img in page.images] == [b"\x89PN"]


def test_a_control_run_shows_its_protocol_table(tmp_path):
    run_dir = tmp_path / "control"
    run_dir.mkdir()
    write_json(run_dir / "run.json", {"kind": "control", "scenario": "qa-kidnap", "status": "complete"})
    ci = {"mean": 0.5, "low": 0.4, "high": 0.6}
    write_json(run_dir / "control.json", {
        "settings": {"episodes": 100, "dist": "deploy", "audit_budget": 0.02},
        "roles": {"monitor": "<i>surprise</i>"},
        "protocols": [{"label": "<i>no protocol</i>", "usefulness": ci, "safety": ci, "attack_rate": 0.1,
                       "simulated": {**ci, "n": 10}}]})
    Image.new("RGB", (40, 30), "red").save(run_dir / "control-pareto.png")
    text = build_report(run_dir)
    assert "Can a protocol keep this agent safe?" in text and "AI control: safety and usefulness" in text
    assert "&lt;i&gt;no protocol&lt;/i&gt;" in text and "<i>surprise</i>" not in text
    assert "50% <small>[40%, 60%]</small>" in text and text.count("data:image/png;base64,") == 1


def test_report_command_writes_the_file_and_prints_its_path(scripted_run, tmp_path):
    out = tmp_path / "nested" / "r.html"
    result = cli("report", scripted_run, "--out", out)
    assert str(out) in result.output.replace("\n", "") and out.is_file()
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("ref", ["987654", "no/such/run-folder"])
def test_report_command_rejects_unknown_runs_in_one_line(ref):
    result = runner.invoke(app, ["report", ref])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output
