"""The report's reference parts: how far the run got, the files that could not be used, the facts of the run,
figures and tables other commands left in the folder, and the glossary (verdict kinds from the kinds table)."""

from __future__ import annotations

import json

from aligntriage.diagnose.kinds import KINDS
from aligntriage.errors import AligntriageError
from aligntriage.report.folder import RunView
from aligntriage.report.page import code, esc, figure, num
from aligntriage.store.files import read_json
from aligntriage.store.folder import RunFolder


def banners(run: RunView) -> str:
    """What the reader must know before trusting anything below: an unfinished training, skipped diagnoses."""
    parts = []
    if run.progress:
        parts.append(f'<div class="banner" id="incomplete">{esc(run.progress)}. '
                     "Everything below describes the agent as it was when training stopped.</div>")
    for skipped in run.skipped:
        parts.append(f'<div class="banner warn">Skipped {code(skipped.file)}: {esc(skipped.reason)}</div>')
    return "".join(parts)


def facts(run: RunView) -> str:
    rec = run.record
    ppo = rec.get("ppo") if isinstance(rec.get("ppo"), dict) else {}
    rows = [("run folder", str(run.dir.resolve())), ("kind", run.kind),
            ("status", run.progress or rec.get("status", "complete")), ("scenario", run.scenario_name)]
    if run.scenario is not None:
        rows.append(("scenario summary", run.scenario.summary))
    if rec.get("params"):
        rows.append(("level parameters", ", ".join(f"{k}={v}" for k, v in rec["params"].items())))
    if ppo:
        rows.append(("training", f"PPO on '{ppo.get('dist', 'train')}', {ppo.get('total_steps')} steps per seed, "
                                 f"{ppo.get('seeds', 1)} seed(s), {ppo.get('network', '')} network"))
    focus = run.focus()
    if focus is not None:
        rows += [("diagnosed policy", focus.policy), ("levels per distribution", focus.levels),
                 ("episode", f"{focus.horizon} steps, discount {focus.settings.gamma}"), ("level seed", focus.seed)]
        if focus.affordances:
            rows.append(("affordances", focus.affordances))
    rows += [(key, rec[key]) for key in ("created", "note") if rec.get(key)]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _json_table(data, depth: int = 0) -> str:
    """A generic table of a JSON document (lists of records become rows), for files whose shape is not known."""
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        columns = list(dict.fromkeys(k for r in data for k in r))
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{_json_cell(r.get(c), depth)}</td>" for c in columns) + "</tr>"
                       for r in data)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(data, dict):
        return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{_json_cell(v, depth)}</td></tr>"
                                   for k, v in data.items()) + "</table>"
    return esc(json.dumps(data))


def _json_cell(value, depth: int) -> str:
    if isinstance(value, float):
        return num(value)
    if isinstance(value, (dict, list)) and depth < 2 and value:
        return _json_table(value, depth + 1)
    if isinstance(value, (dict, list)):
        return code(json.dumps(value))
    return esc("–" if value is None else value)


def other_files(run: RunView) -> str:
    parts = []
    shown = {"sweep": ("sweep-",), "control": ("control-pareto",)}.get(run.kind, ())
    for name in (RunFolder.CONTROL, RunFolder.SWEEP):
        path = run.dir / name
        if path.is_file() and run.kind not in ("sweep", "control"):
            try:
                parts.append(f"<h3>{esc(name)}</h3>" + _json_table(read_json(path, name)))
            except AligntriageError as exc:
                parts.append(f'<p class="note">{esc(exc)}</p>')
    for path in sorted(run.dir.glob("*.png")):
        if not path.name.startswith(shown):
            parts.append(figure(path.read_bytes(), path.name, f"{code(path.name)} from the run folder"))
    return "".join(parts)


TERMS = [
    ("R (reward)", "The reward provision process: the only signal training ever sees."),
    ("U (intended utility)", "What we actually want, as named terms (some catastrophic); hidden from the agent."),
    ("partition", "A declared split of responsibility: which U terms the reward is responsible for (its scope). "
                  "The rest are the training process's job. Inner vs outer is only defined relative to a partition."),
    ("candidate goal", "A goal the agent might have learned: the intended one and plausible proxies."),
    ("levels where the goals diverge", "Disambiguating levels: where the candidate goals' optimal behaviours lead "
                                       "to different outcomes (decided by the exact solver). Only these can show "
                                       "which goal the agent pursues; every figure is also given on them alone."),
    ("relative R-regret / U shortfall", "(optimum - agent) / (optimum - uniform-random policy) of the expected "
                                        "discounted R (or U) from a level's start over the episode: 0 is optimal, "
                                        "1 no better than acting at random. Exact over the finite episode."),
    ("adequacy shortfall", "The same figure for the R-optimal policy on the terms in the reward's scope: if the "
                           "reward's own optimum falls short there, the reward asks for the wrong thing."),
    ("mixture weight / share explained", "Goal inference: each hypothesis's soft-optimal policy scores the agent's "
                                         "actions at the states it visits (exactly weighted); the mixture weight is "
                                         "how many episodes it accounts for, the share explained how much of the "
                                         "agent's predictable behaviour it captures beyond a random policy (below "
                                         "0%: it predicts the agent worse than a random policy does)."),
    ("chance", "What a uniform-random policy's episodes do on the same levels: an outcome counts as pursuit only "
               "well above it."),
    ("probability of a verdict", "The share of resamples of the levels (and seeds) on which the decision table "
                                 "gives that verdict; below the confidence tolerance the verdict is inconclusive."),
    ("decision table", "The ordered rules that turn the figures into a verdict, each citing the definition it "
                       "implements; the first row whose conditions all hold decides."),
    ("EPIC distance", "A distance between reward functions that ignores potential shaping and scale: 0 means R and "
                      "U (on the partition's scope) induce the same preferences."),
    ("IID check", "The same evidence on the training distribution: an agent that fails there is incompetent, not "
                  "misaligned."),
    ("threat-model reading", "Partition-free: whether the reward incentivised a catastrophe (the R-optimal policy "
                             "incurs it) or it happened regardless."),
]


def glossary() -> str:
    entries = [(k.name, k.glossary) for k in KINDS.values()] + TERMS
    return '<dl class="glossary">' + "".join(f"<dt>{esc(t)}</dt><dd>{esc(x)}</dd>" for t, x in entries) + "</dl>"
