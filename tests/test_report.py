"""The HTML report: every section and figure of a trained run, self-contained (data URIs only), user strings
escaped, partial run folders rendered, and the ``report`` command with its one-line errors."""

import base64
import json
from html.parser import HTMLParser

import pytest
from PIL import Image
from typer.testing import CliRunner

from aligntriage import get_scenario
from aligntriage.cli.main import app
from aligntriage.diagnose import diagnose_many
from aligntriage.report.html import build_report, write_report
from aligntriage.store.files import write_csv, write_json
from aligntriage.train.loop import load_policy, train
from aligntriage.train.ppo import PPOConfig

TINY = {"height": 3, "width": 6, "horizon": 20}
CONFIG = PPOConfig(total_steps=16 * 16 * 6, seeds=1, num_envs=16, rollout=16, minibatches=2, epochs=2, pool=32,
                   width=16)
HOSTILE = "<script>alert('x')</script>"
FULL_SECTIONS = {"summary", "verdicts", "threats", "outcomes", "goals", "values", "where", "episodes", "run",
                 "glossary"}


def save_diagnoses(run_dir, policy, label, levels=6):
    sc = get_scenario("coinrun", **TINY)
    results = diagnose_many(policy, sc, ["train", "deploy"], levels=levels, policy_label=label)
    for name, result in results.items():
        write_json(run_dir / f"diagnosis-{name}.json", json.loads(result.to_json()))


def make_scripted_run(run_dir, note=HOSTILE, metrics=False):
    """A run folder holding diagnoses of a scripted policy (no training), optionally with synthetic training
    metrics so that every kind of figure appears."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "run.json", {"kind": "diagnose", "scenario": "coinrun", "params": TINY, "note": note,
                                      "status": "complete"})
    save_diagnoses(run_dir, "goal:end-of-level", "goal:end-of-level")
    if metrics:
        write_csv(run_dir / "metrics.csv", [{"update": u, "seed": 0, "steps": 256 * u, "mean_return": u / 10,
                                             "success_rate": u / 10} for u in range(1, 8)])
    return run_dir


class Page(HTMLParser):
    """Section ids, images and tables of a report."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.images, self.tables, self.scripts, self.links = set(), [], set(), 0, 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.add(attrs.get("id"))
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "table" and attrs.get("id"):
            self.tables.add(attrs["id"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.links += 1


def decode(src):
    header, _, payload = src.partition(",")
    assert header in ("data:image/png;base64", "data:image/gif;base64"), header[:40]
    data = base64.b64decode(payload, validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" or data[:6] in (b"GIF89a", b"GIF87a")
    return data


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "tiny-run"
    train("coinrun", CONFIG, out, params=TINY)
    save_diagnoses(out, [load_policy(out, 0)], "trained on train")
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
    assert "verdicts" in page.tables
    assert page.scripts == 0 and page.links == 0 and "http://" not in text and "https://" not in text
    kinds = {decode(img["src"])[:3] for img in page.images}
    assert kinds == {b"\x89PN", b"GIF"}
    assert all(img.get("alt") for img in page.images)
    assert len(page.images) >= 9  # curves, outcomes, posterior, values, heatmaps, field, 3 episodes x 2
    assert "Could not draw" not in text and "No level pictures" not in text
    for heading in ("What went wrong", "Why we think so", "What would change it", "disambiguating"):
        assert heading in text


def test_scripted_run_renders_and_escapes_user_strings(scripted_run):
    text = build_report(scripted_run)
    page = Page(text)
    assert FULL_SECTIONS <= page.sections and "training" not in page.sections
    assert HOSTILE not in text and page.scripts == 0
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "the scripted policy &#x27;goal:end-of-level&#x27;" in text
    assert "inner misalignment" in text and "train-rand-10pct" in text  # the verdict and the suggested remedy


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


runner = CliRunner()


def test_report_command_writes_the_file_and_prints_its_path(scripted_run, tmp_path):
    out = tmp_path / "nested" / "r.html"
    result = runner.invoke(app, ["report", str(scripted_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output.replace("\n", "") and out.is_file()
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("ref", ["987654", "no/such/run-folder"])
def test_report_command_rejects_unknown_runs_in_one_line(ref):
    result = runner.invoke(app, ["report", ref])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output
