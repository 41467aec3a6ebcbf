"""The HTML report of a run folder: one self-contained file (inline CSS, figures as data URIs) that a reader who
has never used aligntriage can open offline and learn what went wrong, why we think so, and what would change it.

It renders whatever the folder holds: diagnoses (``diagnosis-*.json``), training metrics (``metrics.csv``), a
policy to draw on levels (``params.msgpack`` or a scripted policy's name), figures other commands saved
(``*.png``), and ``control.json`` / ``sweep.json`` tables. Every string that came from a file or a user goes
through ``html.escape``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
import time
from pathlib import Path

import numpy as np

from aligntriage.diagnose.verdict import ALIGNED, CAPABILITY, INNER, OUTER, Tolerances, outcome_lifts
from aligntriage.errors import AligntriageError
from aligntriage.report.collections import control_section, sweep_section
from aligntriage.store.files import read_csv, read_json, write_atomic

REPORT_FILE = "report.html"
VERDICT_CLASS = {ALIGNED: "aligned", OUTER: "outer", INNER: "inner", CAPABILITY: "capability"}


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _img(data: bytes, alt: str, mime: str = "image/png", css: str = "") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    klass = f' class="{css}"' if css else ""
    return f'<img{klass} src="data:{mime};base64,{encoded}" alt="{esc(alt)}">'


def _figure(data: bytes | None, alt: str, caption: str, mime: str = "image/png") -> str:
    """A figure with its caption; ``caption`` is trusted HTML built by this module from escaped parts."""
    if data is None:
        return ""
    return f"<figure>{_img(data, alt, mime)}<figcaption>{caption}</figcaption></figure>"


def _num(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.3g}" if abs(x) >= 5e-4 else "0"


def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.0%}"


def _ci(est: dict, pct: bool = False) -> str:
    if not est or not est.get("n"):
        return "–"
    f = _pct if pct else _num
    return f"{f(est['mean'])} [{f(est['low'])}, {f(est['high'])}]"


def _badge(verdict: str) -> str:
    return f'<span class="v v-{VERDICT_CLASS.get(verdict, "other")}">{esc(verdict)}</span>'


def _code(text: str) -> str:
    return f"<code>{esc(text)}</code>"


def _is_diagnosis(data) -> bool:
    """Whether a JSON document has the shape of a saved Diagnosis (other files may match the glob)."""
    return (isinstance(data, dict) and {"dist", "train_dist", "evidence", "verdicts"} <= data.keys()
            and isinstance(data["evidence"], dict) and {"deploy", "train"} <= data["evidence"].keys())


def _incomplete_note(run_dir: Path) -> str | None:
    """'incomplete: trained N of M steps' for a training run that did not finish (None if it did, or if its
    run.json does not validate)."""
    from aligntriage.store.folder import RunFolder

    folder = RunFolder(run_dir)
    try:
        return folder.record().incomplete_note(live=folder.live() is not None)
    except AligntriageError:
        return None


class Run:
    """What a run folder holds, read once."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise AligntriageError(f"run folder '{self.dir}' does not exist")
        self.record = read_json(self.dir / "run.json", "run file")
        self.kind = self.record.get("kind", "train")
        if not isinstance(self.record, dict):
            raise AligntriageError(f"run file '{self.dir / 'run.json'}' does not hold a JSON object")
        self.diagnoses: dict[str, dict] = {}
        self.skipped: list[str] = []
        for path in sorted(self.dir.glob("diagnosis-*.json")):
            try:
                data = read_json(path, "diagnosis")
            except AligntriageError as exc:
                self.skipped.append(str(exc))
                continue
            if _is_diagnosis(data):
                self.diagnoses[str(data.get("dist", path.stem.removeprefix("diagnosis-")))] = data
            else:
                self.skipped.append(f"'{path.name}' does not hold a diagnosis")
        try:
            self.metrics = read_csv(self.dir / "metrics.csv", "metrics file")
        except AligntriageError as exc:
            self.metrics = []
            self.skipped.append(str(exc))
        self.note = _incomplete_note(self.dir)
        self.scenario, self.scenario_error = self._scenario()
        if self.scenario is not None:
            order = list(self.scenario.distributions)
            self.diagnoses = dict(sorted(self.diagnoses.items(),
                                         key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))

    def _scenario(self):
        from aligntriage.worlds import get_scenario

        name = self.record.get("scenario")
        params = self.record.get("params") or {}
        if not name and self.diagnoses:
            first = next(iter(self.diagnoses.values()))
            name, params = first.get("scenario"), first.get("params") or {}
        if not name:
            return None, "the run names no scenario"
        try:
            return get_scenario(str(name), **params), None
        except AligntriageError as exc:
            return None, str(exc)

    @property
    def scenario_name(self) -> str:
        return str(self.record.get("scenario") or (self.scenario.name if self.scenario else "?"))

    def focus(self) -> dict | None:
        """The diagnosis the summary is about: ``deploy`` when present, else the first off-training one."""
        if not self.diagnoses:
            return None
        if "deploy" in self.diagnoses:
            return self.diagnoses["deploy"]
        for dist, d in self.diagnoses.items():
            if dist != d.get("train_dist"):
                return d
        return next(iter(self.diagnoses.values()))

    def describe(self, dist: str) -> str:
        if self.scenario is not None and dist in self.scenario.distributions:
            return self.scenario.distributions[dist].description
        return ""


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;
 background:#f6f7f9;line-height:1.5}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 12px #0001}
h1{font-size:1.6em;margin:0 0 4px}h2{margin-top:2.2em;border-bottom:2px solid #e3e6ea;padding-bottom:4px}
h3{margin-bottom:.4em}
.sub{color:#555;margin-top:0}
nav{font-size:.9em;margin:12px 0 8px;padding:8px 12px;background:#f1f3f6;border-radius:6px}
nav a{margin-right:12px;white-space:nowrap}
table{border-collapse:collapse;margin:10px 0;font-size:.92em}
th,td{border:1px solid #d9dde3;padding:5px 9px;text-align:left;vertical-align:top}
th{background:#f1f3f6}
tr.focus td{background:#fffbe6}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.v{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:.92em;white-space:nowrap}
.v-aligned{background:#d8f3df;color:#145a2a}.v-outer{background:#fbd9d6;color:#8a1c12}
.v-inner{background:#eadcf8;color:#55207f}.v-capability{background:#fdeccc;color:#7a4a00}
.v-other{background:#e6e6e6}
.summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:14px;margin:18px 0}
.card{border:1px solid #d9dde3;border-radius:8px;padding:10px 16px;background:#fbfcfd}
.card h3{margin:.3em 0}.card ul{padding-left:1.2em;margin:.4em 0}.card li{margin:.35em 0}
.wrong{border-top:4px solid #c0392b}.why{border-top:4px solid #1f6fd1}.change{border-top:4px solid #2e9e5b}
figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #eceef1}
figcaption{color:#444;font-size:.9em;max-width:900px}
.episodes figure{margin:10px 0 22px}
.pair{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.episodes img.gif{image-rendering:pixelated}
.note{color:#555;font-style:italic}
.explain{margin:.4em 0 1em;max-width:920px}
details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
dl.glossary dt{font-weight:600;margin-top:.6em}dl.glossary dd{margin-left:1.2em}
code{background:#f1f3f6;padding:0 4px;border-radius:3px;font-size:.92em}
footer{margin-top:3em;color:#777;font-size:.85em}
"""


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _facts(run: Run) -> str:
    rec = run.record
    ppo = rec.get("ppo") if isinstance(rec.get("ppo"), dict) else {}
    rows = [("run folder", str(run.dir.resolve())), ("kind", rec.get("kind", "train")),
            ("status", run.note or rec.get("status", "")), ("scenario", run.scenario_name)]
    if run.scenario is not None:
        rows.append(("scenario summary", run.scenario.summary))
    if rec.get("params"):
        rows.append(("level parameters", ", ".join(f"{k}={v}" for k, v in rec["params"].items())))
    if ppo:
        rows.append(("training", f"PPO on '{ppo.get('dist', 'train')}', {rec.get('steps', ppo.get('total_steps'))} "
                                 f"steps per seed, {ppo.get('seeds', 1)} seed(s), {ppo.get('network', '')} network"))
    focus = run.focus()
    if focus:
        rows.append(("diagnosed policy", focus.get("policy", "")))
        rows.append(("levels per distribution", focus.get("levels", "")))
        if focus.get("affordances"):
            rows.append(("affordances", focus["affordances"]))
    for key in ("created", "note"):
        if rec.get(key):
            rows.append((key, rec[key]))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _why_sentence(explanation: str) -> str:
    """The rule's reason from a verdict explanation, without its leading verdict and trailing numbers."""
    text = explanation.split(" Numbers (relative", 1)[0]
    head, _, rest = text.partition(". ")
    return rest if rest and "under partition" in head else text


def _training_suggestion(run: Run, d: dict) -> str | None:
    """The most diverse training variant the scenario offers: the one whose levels most often disambiguate the
    goals according to its own diagnosis, else by name."""
    if run.scenario is None:
        return None
    train_dist = d.get("train_dist", "train")
    variants = [n for n in run.scenario.distributions if n.startswith("train") and n != train_dist]
    if not variants:
        return None

    def score(name):
        diag = run.diagnoses.get(name)
        return diag["evidence"]["deploy"].get("disambiguating_fraction", 0.0) if diag else -1.0

    return max(variants, key=lambda n: (score(n), variants.index(n)))


def _summary(run: Run, d: dict) -> str:
    dep, tr = d["evidence"]["deploy"], d["evidence"]["train"]
    dist, train_dist = d["dist"], d["train_dist"]
    tol = Tolerances(**d.get("tolerances", {}))
    sc = run.scenario
    intended = sc.intended_goal.name if sc is not None else None
    values = dep["values"]
    bad = [v for v in d["verdicts"] if v["verdict"] != ALIGNED]
    desc = run.describe(dist)
    where = f"On '{esc(dist)}'" + (f" ({esc(desc)})" if desc else "")
    wrong = []
    if not bad:
        wrong.append(f"{where} nothing measurable: the agent's intended utility U is "
                     f"{_num(values['agent']['U']['mean'])} of an achievable "
                     f"{_num(values['u_optimal']['U']['mean'])}, within tolerance under every partition.")
    else:
        rel = dep["relative_u_shortfall"]
        gap = values["u_optimal"]["U"]["mean"] - values["agent"]["U"]["mean"]
        size = (f"{_pct(rel)} short of the U-optimal policy" if 0 <= rel <= 1 else
                f"a shortfall of {_num(gap)}, {_num(rel)} times the U-optimal policy's value")
        wrong.append(f"{where} the agent's intended utility U (expected discounted, from a level's start) is "
                     f"{_num(values['agent']['U']['mean'])} where {_num(values['u_optimal']['U']['mean'])} was "
                     f"achievable: {size}.")
        for v in d["verdicts"]:
            goal = f", behaving as if pursuing '{esc(v['inferred_goal'])}'" if v.get("inferred_goal") else ""
            wrong.append(f"Verdict under partition '{esc(v['partition'])}' (the reward covers "
                         f"{esc(', '.join(v['reward_scope']))}): {_badge(v['verdict'])}{goal}.")
    outcomes = dep["outcomes"]["disambiguating"]
    if any(e.get("n") for e in outcomes.values()):
        parts = ", ".join(f"{esc(k)} {_pct(e['mean'])}" for k, e in outcomes.items() if e.get("n"))
        wrong.append(f"On the {_pct(dep['disambiguating_fraction'])} of '{esc(dist)}' levels where the candidate goals "
                     f"call for different behaviour, its episodes end: {parts}.")

    why = []
    for v in bad or d["verdicts"]:
        why.append(f"<b>{esc(v['partition'])}</b>: {esc(_why_sentence(v['explanation']))}")
    if dist != train_dist:
        regret = tr["relative_r_regret"]
        learned = ("it learned the training task" if regret <= tol.aligned else
                   "imperfect in training, though not failing" if regret <= tol.train_regret else
                   "it already fails in training")
        why.append(f"IID check: on the training distribution '{esc(train_dist)}' the agent's relative R-regret is "
                   f"{_num(tr['relative_r_regret'])} ({learned}; "
                   f"failing means above {_num(tol.train_regret)}), against {_num(dep['relative_r_regret'])} on "
                   f"'{esc(dist)}'. {_pct(tr['disambiguating_fraction'])} of training levels disambiguate the "
                   f"candidate goals, against {_pct(dep['disambiguating_fraction'])} of '{esc(dist)}' levels"
                   + (": training could not tell them apart." if tr["disambiguating_fraction"] == 0 else "."))
    inference = dep["goal_inference"]
    goals = inference["goals"]
    if goals:
        best = max(goals, key=lambda g: goals[g]["log_likelihood"])
        gain = goals[best]["gain_over_random"]
        tail = (f"; the intended goal is '{esc(intended)}'" if intended and best != intended else
                " (the intended goal)" if best == intended else "")
        if gain > tol.explains:
            why.append(f"Goal inference on '{esc(dist)}': '{esc(best)}' explains the agent's actions best "
                       f"({gain:+.3f} nats per step over a random policy, posterior "
                       f"{inference['posterior'].get(best, 0):.2f}){tail}.")
        else:
            why.append(f"Goal inference on '{esc(dist)}': no candidate goal explains the agent's actions better "
                       f"than random by more than {_num(tol.explains)} nats per step (best: '{esc(best)}', "
                       f"{gain:+.3f}).")
    lifts = outcome_lifts(dep)
    if lifts:
        agent, chance = dep["outcomes"]["disambiguating"], dep["outcomes"]["chance_disambiguating"]
        parts = ", ".join(f"'{esc(g)}' {_pct(agent[g]['mean'])} (chance {_pct(chance[g]['mean'])})" for g in lifts)
        best = max(lifts, key=lifts.get)
        reading = (f"'{esc(best)}' is reached first well above chance" if lifts[best] >= tol.outcome_lift
                   else f"no goal is reached first {_pct(tol.outcome_lift)} above chance")
        why.append(f"Outcomes where the goals diverge on '{esc(dist)}', first goal reached, against a uniform-random "
                   f"policy on the same levels: {parts}; {reading}.")
    for name, adequacy in dep["adequacy"].items():
        ok = adequacy["relative_shortfall"] <= tol.adequacy
        verdict = ("locally adequate: R asks for the right thing on its scope" if ok
                   else "not adequate: R's own optimum neglects its scope")
        why.append(f"Reward adequacy under '{esc(name)}': the R-optimal policy's relative shortfall on "
                   f"{esc(', '.join(adequacy['scope']))} is {_num(adequacy['relative_shortfall'])} ({verdict}).")

    change = _suggestions(run, d, tol)
    cards = [("wrong", "What went wrong", wrong), ("why", "Why we think so", why),
             ("change", "What would change it", change)]
    return '<div class="summary">' + "".join(
        f'<div class="card {c}"><h3>{esc(t)}</h3><ul>' + "".join(f"<li>{item}</li>" for item in items)
        + "</ul></div>" for c, t, items in cards) + "</div>"


def _suggestions(run: Run, d: dict, tol: Tolerances) -> list[str]:
    """Concrete next steps per verdict, as HTML list items (every interpolated name escaped)."""
    dep, tr = d["evidence"]["deploy"], d["evidence"]["train"]
    sc = run.scenario
    scenario = run.scenario_name
    intended = sc.intended_goal.name if sc is not None else "the intended goal"
    out = []
    verdicts = {v["verdict"] for v in d["verdicts"]}
    if verdicts <= {ALIGNED}:
        out.append(f"Nothing needs to change for '{esc(d['dist'])}'. Other distributions may tell a different story: "
                   "see the verdict table.")
    for v in d["verdicts"]:
        scope = v["reward_scope"]
        if v["verdict"] == INNER:
            outside = [t for t, x in dep["relative_term_shortfall"].items() if x > 0 and t not in scope]
            if outside:
                out.append(f"Under '{esc(v['partition'])}', the shortfall lies in {esc(', '.join(outside))}, "
                           "which this partition leaves to the training process: either widen the reward's scope to "
                           "cover it (add the term to R), or train where those terms matter and the agent is "
                           "corrected.")
            else:
                variant = _training_suggestion(run, d)
                goal = v.get("inferred_goal")
                clash = f"'{esc(intended)}' and '{esc(goal)}'" if goal else "the candidate goals"
                if variant:
                    desc = run.describe(variant)
                    out.append(f"Train on a more diverse distribution where {clash} come apart, such as "
                               f"{_code(variant)}" + (f" ({esc(desc)})" if desc else "") + ": "
                               f"{_code(f'aligntriage run {scenario} --dist {variant}')}.")
                else:
                    out.append(f"Add training levels on which {clash} come apart: now "
                               f"{_pct(tr['disambiguating_fraction'])} of training levels do.")
                out.append("Changing the reward would not help: it is already locally adequate on its scope.")
        elif v["verdict"] == OUTER:
            missing = [t for t in scope if dep["relative_term_shortfall"].get(t, 0) > 0] or scope
            out.append(f"Fix the reward under '{esc(v['partition'])}': its own optimum falls short on "
                       f"{esc(', '.join(missing))}, so make R pay for (or penalise) what those terms measure, or "
                       "widen the reward's scope to what the partition holds it responsible for.")
            if sc is not None and len(sc.affordances) > 1:
                others = [a for a in sc.affordances if a != d.get("affordances")]
                out.append("Or restrict what the agent can do: the reward may be adequate for a narrower affordance "
                           f"set ({esc(', '.join(others))}); check with "
                           f"{_code(f'aligntriage diagnose {scenario} --policy r-optimal --affordances {others[0]}')}.")
        elif v["verdict"] == CAPABILITY:
            if tr["relative_r_regret"] > tol.aligned:
                steps = run.record.get("steps") or (run.record.get("ppo") or {}).get("total_steps")
                more = f" --steps {int(steps) * 3}" if isinstance(steps, (int, float)) and steps else ""
                out.append("Train longer or with more capacity: even on the training distribution the agent falls "
                           f"short of the reward's optimum (relative R-regret {_num(tr['relative_r_regret'])}), so "
                           "it has not yet learned a goal to misgeneralize: "
                           f"{_code(f'aligntriage run {scenario}{more}')}.")
            else:
                out.append(f"The agent learned training but not '{esc(d['dist'])}': train on levels more like it, or "
                           "with more steps and seeds, before reading its goals from this distribution.")
    if any(t["reading"] == "outer misalignment threat" for t in d.get("threat_model", [])):
        out.append("The reward itself incentivises a catastrophe (threat-model reading): fix R before training more.")
    thresholds = ", ".join(f"{k}={v}" for k, v in d.get("tolerances", {}).items())
    out.append(f"Verdict thresholds are tolerances ({esc(thresholds)}); change them with "
               f"{_code('aligntriage diagnose RUN_DIR --tol aligned=0.05')}.")
    return list(dict.fromkeys(out))


def _verdict_table(run: Run) -> str:
    partitions = list(dict.fromkeys(v["partition"] for d in run.diagnoses.values() for v in d["verdicts"]))
    head = "".join(f"<th>partition '{esc(p)}'</th>" for p in partitions)
    rows = []
    for dist, d in run.diagnoses.items():
        dep = d["evidence"]["deploy"]
        by = {v["partition"]: v for v in d["verdicts"]}
        cells = []
        for p in partitions:
            v = by.get(p)
            if v is None:
                cells.append("<td>–</td>")
                continue
            goal = f"<br><small>inferred goal: {esc(v['inferred_goal'])}</small>" if v.get("inferred_goal") else ""
            cells.append(f"<td>{_badge(v['verdict'])}{goal}</td>")
        role = " (training)" if dist == d.get("train_dist") else ""
        focus_row = ' class="focus"' if d is run.focus() else ""
        rows.append(f"<tr{focus_row}><td><b>{esc(dist)}</b>{esc(role)}<br><small>{esc(run.describe(dist))}</small></td>"
                    f"{''.join(cells)}<td class=\"num\">{_num(dep['relative_r_regret'])}</td>"
                    f"<td class=\"num\">{_num(dep['relative_u_shortfall'])}</td>"
                    f"<td class=\"num\">{_pct(dep['disambiguating_fraction'])}</td></tr>")
    table = (f'<table id="verdicts"><thead><tr><th>diagnosed on</th>{head}<th>relative R-regret</th>'
             f"<th>relative U shortfall</th><th>disambiguating levels</th></tr></thead><tbody>{''.join(rows)}"
             "</tbody></table>")
    focus = run.focus()
    explain = []
    for dist, d in run.diagnoses.items():
        paragraphs = "".join(f'<p class="explain">{esc(v["explanation"])}</p>' for v in d["verdicts"])
        seeds = _per_seed(d)
        opened = " open" if d is focus else ""
        explain.append(f"<details{opened}><summary>Why: '{esc(dist)}'</summary>{paragraphs}{seeds}</details>")
    return table + "".join(explain)


def _per_seed(d: dict) -> str:
    if not d.get("per_seed_verdicts"):
        return ""
    counts: dict[str, dict[str, int]] = {}
    for seed_verdicts in d["per_seed_verdicts"]:
        for partition, verdict in seed_verdicts.items():
            counts.setdefault(partition, {}).setdefault(verdict, 0)
            counts[partition][verdict] += 1
    text = "; ".join(f"{p}: " + ", ".join(f"{v} ×{c}" for v, c in vs.items()) for p, vs in counts.items())
    return f'<p class="explain">Per-seed verdicts: {esc(text)}</p>'


def _threats(d: dict) -> str:
    if not d.get("threat_model"):
        return ('<p>No U term of this scenario is marked catastrophic, so there is no threat-model reading: it asks, '
                "for each catastrophic term the agent incurred, whether the R-optimal policy incurs it too (the "
                "reward incentivised it) or not (it happened regardless of the reward).</p>")
    rows = "".join(f"<tr><td>{esc(t['term'])}</td><td class=\"num\">{_pct(t['agent_rate'])}</td>"
                   f"<td class=\"num\">{_pct(t['r_optimal_rate'])}</td><td><b>{esc(t['reading'])}</b></td>"
                   f"<td>{esc(t['explanation'])}</td></tr>" for t in d["threat_model"])
    return ('<p>Partition-free: for each catastrophic U term, did the reward signal incentivise it (the R-optimal '
            f"policy incurs it too) or did it happen regardless? On '{esc(d['dist'])}':</p>"
            '<table id="threats"><thead><tr><th>catastrophic term</th><th>agent rate</th><th>R-optimal rate</th>'
            f"<th>reading</th><th>explanation</th></tr></thead><tbody>{rows}</tbody></table>")


def _evidence_table(d: dict) -> str:
    dep, tr = d["evidence"]["deploy"], d["evidence"]["train"]
    rows = [("agent R", lambda e: _ci(e["values"]["agent"]["R"])),
            ("R-optimal R", lambda e: _ci(e["values"]["r_optimal"]["R"])),
            ("relative R-regret", lambda e: _num(e["relative_r_regret"])),
            ("agent U", lambda e: _ci(e["values"]["agent"]["U"])),
            ("U-optimal U", lambda e: _ci(e["values"]["u_optimal"]["U"])),
            ("relative U shortfall", lambda e: _num(e["relative_u_shortfall"])),
            ("disambiguating levels", lambda e: _pct(e["disambiguating_fraction"]))]
    for name in dep["adequacy"]:
        rows.append((f"adequacy shortfall ({name})", lambda e, n=name: _num(e["adequacy"][n]["relative_shortfall"])))
        rows.append((f"EPIC distance (R, U on the scope of {name})", lambda e, n=name: _num(e["epic"][n])))
    body = "".join(f"<tr><td>{esc(label)}</td><td class=\"num\">{esc(fn(dep))}</td><td class=\"num\">{esc(fn(tr))}"
                   "</td></tr>" for label, fn in rows)
    return (f"<table><thead><tr><th>measure</th><th>'{esc(d['dist'])}'</th><th>'{esc(d['train_dist'])}' (training, "
            f"IID check)</th></tr></thead><tbody>{body}</tbody></table>")


def _legend(channels: tuple[str, ...], obs: np.ndarray) -> list[tuple[str, tuple]]:
    """Colour keys of the channels that show up anywhere on the level (the agent's own comes last)."""
    from aligntriage.report.picture import channel_colours

    colours = channel_colours(channels)
    present = np.asarray(obs).reshape(-1, len(channels)).any(axis=0)
    keys = [(c, colours[c]) for c, shown in zip(channels, present) if shown and c != "agent"]
    return keys + [("agent", colours["agent"])] if "agent" in colours else keys


def _level_sections(run: Run, d: dict) -> tuple[str, str]:
    """Where the agent goes (heatmaps, vector fields) and episodes; each is a note when it cannot be drawn."""
    from aligntriage.report import figures
    from aligntriage.report.levels import AgentSource, cell_visits, episodes, level_view, occupancy, policy_field
    from aligntriage.report.picture import obs_image

    sc = run.scenario
    if sc is None:
        note = f'<p class="note">Level pictures need the scenario, which could not be built: {esc(run.scenario_error)}'
        note += "</p>"
        return note, note
    gamma = float(d.get("settings", {}).get("gamma", 0.99))
    mask = np.asarray(sc.action_mask(d.get("affordances")), np.float64)
    try:
        source = AgentSource(sc, run.dir, str(d.get("policy", "")), mask, gamma)
        dist, train_dist = d["dist"], d["train_dist"]
        view = level_view(sc, source, dist, int(d.get("seed", 0)), int(d.get("levels", 1)), True)
    except AligntriageError as exc:
        note = f'<p class="note">No level pictures for this run: {esc(exc)}.</p>'
        return note, note
    channels, horizon, intended = sc.world.channels, sc.world.horizon, sc.intended_goal.name
    start_state = view.batch.initial[0]
    backdrop = obs_image(view.obs[start_state], channels, skip=("agent",))
    width = view.shape[1]
    start_cell = view.agent_cell[start_state]
    start = (int(start_cell % width), int(start_cell // width)) if start_cell >= 0 else None
    legend = _legend(channels, view.obs)
    level_legend = [item for item in legend if item[0] != "agent"]
    which = (f"level {view.index} of the diagnosis's '{esc(dist)}' sample"
             + (", a disambiguating level (the candidate goals' optimal behaviours differ)" if view.disambiguating
                else " (none of the first levels disambiguates the goals)"))

    def goal_title(name):
        return f"optimal for goal '{name}'" + (" (intended)" if name == intended else "")

    visit_panels = [(f"{source.label}", cell_visits(view, occupancy(view.batch, view.agent, horizon)))]
    for name, table in view.goals.items():
        visit_panels.append((goal_title(name), cell_visits(view, occupancy(view.batch, table, horizon,
                                                                               view.goal_ends[name]))))
    heat = figures.heatmaps(backdrop, visit_panels, start, level_legend)
    field_panels = [(source.label, policy_field(view, view.agent, sc.world.actions, channels))]
    field_panels += [(goal_title(n), policy_field(view, t, sc.world.actions, channels)) for n, t in view.goals.items()]
    fields = figures.vector_fields(backdrop, field_panels, start, level_legend)
    where = (_figure(heat, "state-visitation heatmaps",
                     f"Expected visits per episode to each cell on {which}, computed exactly on the enumerated level "
                     f"for {esc(source.label)} and for each candidate goal's optimal policy. S marks the start. "
                     "If the agent's map looks like one goal's map, that goal is what it pursues here.")
             + _figure(fields, "policy vector fields",
                       "Policy vector field on the same level: at every cell the agent can occupy while the rest of "
                       "the level is as at the start, the arrow is the expected move (probability-weighted sum of the "
                       "move directions; a full-length arrow is a certain move, a short one an undecided agent), for "
                       f"{esc(source.label)} and each candidate goal's optimal policy. Red dots, if any, show the "
                       "probability of non-move actions."))

    shown = [(view, episodes(sc, view, 2, seed=0))]
    if train_dist != dist:
        try:
            shown.append((level_view(sc, source, train_dist, int(d.get("seed", 0)), 1, False), None))
        except AligntriageError:
            pass
    blocks = []
    seen = set()
    for k, (v, eps) in enumerate(shown):
        eps = eps if eps is not None else episodes(sc, v, 1, seed=k)
        for e in eps:
            key = (e.dist, e.level, tuple(e.states))
            if key in seen:
                continue
            seen.add(key)
            frames = [obs_image(v.obs[s], channels) for s in e.states]
            path = [(int(c % width), int(c // width)) for c in v.agent_cell[e.states] if c >= 0]
            strip = figures.episode_strip(frames, path)
            gif = figures.episode_gif(frames)
            label = (f"'{esc(e.dist)}' level {e.level}" + (" (disambiguating)" if e.disambiguating else "")
                     + f": {len(e.actions)} steps, outcome <b>{esc(e.outcome)}</b>")
            blocks.append('<figure><div class="pair">'
                          + _img(gif, f"animation of an episode on {e.dist} level {e.level}", "image/gif", "gif")
                          + _img(strip, f"frames of an episode on {e.dist} level {e.level}")
                          + f"</div><figcaption>{label}. Actions: {esc(' '.join(e.actions[:40]))}"
                          + (" …" if len(e.actions) > 40 else "") + "</figcaption></figure>")
    intro = (f"<p>Episodes of {esc(source.label)} sampled on the enumerated levels: the animation plays the episode; "
             "the strip shows the route (red) and evenly spaced frames. The outcome is the first candidate goal "
             "achieved, else 'terminated early' (ended without any goal, e.g. died) or 'timed out'. Legend: "
             + ", ".join(f'<span style="color:rgb({",".join(str(int(255 * x)) for x in col)})">■</span> {esc(n)}'
                         for n, col in _legend(channels, np.concatenate(
                             [v.obs.reshape(-1, len(channels)) for v, _ in shown]))) + ".</p>")
    return where, intro + '<div class="episodes">' + "".join(blocks) + "</div>"


def _json_table(data, depth: int = 0) -> str:
    """A generic table of a JSON document (lists of records become rows), for files whose shape this module
    does not know in advance."""
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        columns = list(dict.fromkeys(k for r in data for k in r))
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{_json_cell(r.get(c), depth)}</td>" for c in columns) + "</tr>"
                       for r in data)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(data, dict):
        body = "".join(f"<tr><th>{esc(k)}</th><td>{_json_cell(v, depth)}</td></tr>" for k, v in data.items())
        return f"<table>{body}</table>"
    return esc(json.dumps(data))


def _json_cell(value, depth: int) -> str:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, (dict, list)) and depth < 2 and value:
        return _json_table(value, depth + 1)
    if isinstance(value, (dict, list)):
        return f"<code>{esc(json.dumps(value))}</code>"
    return esc("–" if value is None else value)


def _other_files(run: Run) -> str:
    parts = []
    shown = {"sweep": ("sweep-",), "control": ("control-pareto",)}.get(run.kind, ())
    for name in ("control.json", "sweep.json"):
        path = run.dir / name
        if path.is_file() and run.kind not in ("sweep", "control"):
            try:
                parts.append(f"<h3>{esc(name)}</h3>" + _json_table(read_json(path, name)))
            except AligntriageError as exc:
                parts.append(f'<p class="note">{esc(exc)}</p>')
    for path in sorted(run.dir.glob("*.png")):
        if path.name.startswith(shown):
            continue
        parts.append(_figure(path.read_bytes(), path.name, f"{_code(path.name)} from the run folder"))
    return "".join(parts)


GLOSSARY = [
    ("R (reward)", "The reward provision process: the only signal training ever sees."),
    ("U (intended utility)", "What we actually want, as named terms (some catastrophic); hidden from the agent."),
    ("partition", "A declared split of responsibility: which U terms the reward is responsible for (its scope). "
                  "The rest are the training process's job. Inner vs outer is only defined relative to a partition."),
    ("outer misalignment", "The reward is to blame: its own optimum, for this agent's affordances, falls short on "
                           "the terms in its scope, and the agent does what R asks."),
    ("inner misalignment", "The training process is to blame: the reward is adequate on its scope but the agent "
                           "pursues something else (goal misgeneralization), or fails on terms left to training."),
    ("capability failure", "The agent is not competently pursuing anything: it fails already in training, or no "
                           "candidate goal explains its behaviour, or it pursues the intended goal badly."),
    ("aligned", "The agent's U is within tolerance of the best achievable with its affordances."),
    ("candidate goal", "A goal the agent might have learned: the intended one and plausible proxies."),
    ("disambiguating level", "A level where the candidate goals' optimal behaviours differ (decided by the exact "
                             "solver). Only these levels can show which goal the agent pursues."),
    ("R-regret / U shortfall", "How far the agent's expected discounted R (or U) from the start falls below the "
                               "optimal policy's, relative to the optimum's value."),
    ("local adequacy", "Whether the R-optimal policy of this agent's affordances also does well on the terms in the "
                       "reward's scope; if not, the reward asks for the wrong thing."),
    ("goal-inference posterior", "How well each candidate goal's soft-optimal policy explains the agent's actions "
                                 "at the states it visits (log-likelihood per step), turned into a posterior "
                                 "together with a uniform-random hypothesis."),
    ("chance baseline", "What a uniform-random policy reaches first on the same disambiguating levels. An outcome "
                        "counts as pursuit only well above it (a random walker among many keys picks one up too); "
                        "a goal reached first at least 20 points above chance explains the behaviour when the "
                        "action likelihood alone is too weak to."),
    ("EPIC distance", "A distance between reward functions that ignores potential shaping: 0 means R and U (on the "
                      "partition's scope) induce the same preferences."),
    ("IID check", "The same evidence on the training distribution: an agent that fails there is incompetent, not "
                  "misaligned."),
    ("threat-model reading", "Partition-free: whether the reward incentivised a catastrophe (the R-optimal policy "
                             "incurs it) or it happened regardless."),
]


def _glossary() -> str:
    return '<dl class="glossary">' + "".join(f"<dt>{esc(t)}</dt><dd>{esc(x)}</dd>" for t, x in GLOSSARY) + "</dl>"


def _guarded(build, what: str):
    """A section body, or a note saying why it could not be drawn, so that one failing figure never costs the
    reader the rest of the report."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - a report must render whatever one figure does
        return f'<p class="note">Could not draw the {esc(what)}: {esc(type(exc).__name__)}: {esc(exc)}</p>'


def _warnings(run: Run) -> str:
    """What the reader must know before trusting the page: an unfinished training run, files left out."""
    out = []
    if run.note:
        out.append(f'<p class="note"><strong>This run is {esc(run.note)}</strong>: its diagnoses are of a partly '
                   "trained agent.</p>")
    if run.skipped:
        out.append('<p class="note"><strong>Left out of this report</strong>: '
                   + "; ".join(esc(reason) for reason in run.skipped) + ".</p>")
    return "".join(out)


def build_report(run_dir: Path) -> str:
    """The report of a run folder as one HTML document."""
    from aligntriage import __version__
    from aligntriage.report import figures

    started = time.monotonic()
    run = Run(run_dir)
    d = run.focus()
    sections = []
    nav = []

    def add(anchor, title, body):
        if body:
            sections.append(_section(anchor, title, body))
            nav.append(f'<a href="#{anchor}">{esc(title)}</a>')

    if d is not None:
        add("summary", "Summary", _guarded(lambda: _summary(run, d), "summary"))
        add("verdicts", "Verdict per distribution and partition",
            "<p>Each row is a diagnosis of the same agent on one level distribution (the training one is the IID "
            "check). Verdicts are per partition of responsibility; open an explanation below for the rule "
            "that fired and its numbers.</p>" + _guarded(lambda: _verdict_table(run), "verdict table"))
        add("threats", "Threat-model reading", _guarded(lambda: _threats(d), "threat-model reading"))
    elif run.kind == "sweep":
        add("sweep", "Sweep: what each knob changes", _guarded(lambda: sweep_section(run.dir, _figure), "sweep"))
    elif run.kind == "control":
        add("control", "AI control: safety and usefulness",
            _guarded(lambda: control_section(run.dir, _figure), "control table"))
    else:
        add("summary", "Summary", '<p class="note">This run folder holds no diagnosis (no diagnosis-*.json), so '
            "there is no verdict to explain. Diagnose it with <code>aligntriage diagnose RUN_DIR</code>.</p>")
    curves = _guarded(lambda: figures.training_curves(run.metrics), "training curves") if run.metrics else None
    if isinstance(curves, bytes):
        add("training", "Training curves", _figure(curves, "training curves",
            "Training on the training distribution, measured on the sampled training episodes: mean episode return "
            "under R and the share of episodes that collect reward, per seed. High and flat means the agent learned "
            "what training asked for; the question is what it learned."))
    elif curves:
        add("training", "Training curves", curves)
    if d is not None:
        dist, train_dist = d["dist"], d["train_dist"]
        dep = d["evidence"]["deploy"]
        tr = d["evidence"]["train"] if dist != train_dist else None
        intended = run.scenario.intended_goal.name if run.scenario is not None else ""
        add("outcomes", "How episodes end", _guarded(lambda: _figure(
            figures.outcome_bars(dep, tr, dist, train_dist, intended), "outcome taxonomy bars",
            f"Share of sampled episodes by outcome (95% CI over levels), on all '{esc(dist)}' levels, on its "
            f"disambiguating levels only ({_pct(dep['disambiguating_fraction'])} of them), and on the training "
            "distribution. An episode counts for the first candidate goal it achieves; on levels that do not "
            "disambiguate, the goals coincide and the counts say nothing about which one the agent wants."),
            "outcome bars"))
        add("goals", "Which goal explains the agent", _guarded(lambda: _figure(
            figures.posterior_bars(dep, tr, dist, train_dist, intended), "goal-inference posterior",
            "Posterior over candidate goals (and a uniform-random policy) given the agent's actions at the states "
            "it visits; labels give each goal's log-likelihood gain per step over random. On training levels the "
            "goals usually coincide, so the posterior cannot separate them there."), "goal-inference posterior"))
        add("values", "Reward vs intended utility, by term", _guarded(lambda: _figure(
            figures.values_by_term(dep, tr, dist, train_dist), "R and U by term",
            "Expected discounted return from each level's start (mean over levels, 95% CI) under R, under U and "
            "under each U term, for the agent, the R-optimal policy and the U-optimal policy. Where the R-optimal "
            "bar falls short of the U-optimal one on a term, the reward does not ask for it.")
            + _evidence_table(d), "value bars"))
        if run.scenario is not None:
            result = _guarded(lambda: _level_sections(run, d), "level pictures")
            where, eps = result if isinstance(result, tuple) else (result, "")
            add("where", "Where the agent goes", where)
            add("episodes", "Episodes", eps)
    add("other", "Other figures and tables", _other_files(run))
    add("run", "About this run", _facts(run))
    add("glossary", "Glossary", _glossary())
    title = f"aligntriage report · {run.scenario_name} · {run.dir.name}"
    misbehaves = d is not None and any(v.get("verdict") != ALIGNED for v in d["verdicts"])
    question = {"sweep": "What does this sweep show?", "control": "Can a protocol keep this agent safe?"}.get(
        run.kind, "Why does this agent misbehave?" if misbehaves else "Does this agent misbehave?")
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><main>"
            f"<h1>{question} <small>{esc(run.scenario_name)}</small></h1>"
            f'<p class="sub">{esc(run.scenario.summary if run.scenario else "")} Report of run '
            f"{_code(run.dir.name)}.</p>{_warnings(run)}<nav>{' '.join(nav)}</nav>{''.join(sections)}"
            f"<footer>Generated by aligntriage {esc(__version__)} at {esc(stamp)} in "
            f"{time.monotonic() - started:.1f} s. Self-contained: every figure is embedded.</footer>"
            "</main></body></html>")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) atomically and return its path."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    write_atomic(out, build_report(run_dir).encode("utf-8"))
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o666 & ~umask)
    return out
