"""The HTML report of a run folder: one self-contained file that a reader who has never used aligntriage can open
offline to learn what went wrong, why we think so, and what would change it.

This module only decides which sections a run folder gets and in which order; each section is built by the
module of its concern (``sections``, ``evidence_view``, ``level_sections``, ``about``, ``collections``) and the
page around them by ``page``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from aligntriage.errors import AligntriageError
from aligntriage.report import about, evidence_view, sections
from aligntriage.report.collections import control_section, mitigation_section, sweep_section
from aligntriage.report.folder import RunView
from aligntriage.report.page import code, document, esc, figure, note, pct, section
from aligntriage.store.files import write_atomic
from aligntriage.store.folder import RunFolder

REPORT_FILE = RunFolder.REPORT


def _guarded(build, what: str) -> str:
    """A section body, or a note saying why it could not be drawn, so that one failing figure never costs the
    reader the rest of the report."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - a report must render whatever one figure does
        return note(f"Could not draw the {what}: {type(exc).__name__}: {exc}")


def _evidence(d) -> list[tuple[str, str, str]]:
    from aligntriage.report import figures

    diverge = esc(evidence_view.diverge_note(d))
    return [
        ("evidence", "The evidence, figure by figure",
         f"<p>Every figure is exact over the {d.horizon}-step episode on each diagnosed level; the 95% intervals "
         "are over resampled levels (and seeds), the same resamples that give each verdict its probability. "
         f"Columns: all levels, the levels {diverge}, and the training distribution.</p>"
         + _guarded(lambda: evidence_view.evidence_table(d), "evidence table")),
        ("outcomes", "How episodes end", _guarded(lambda: figure(
            figures.outcome_bars(*evidence_view.outcome_series(d), d.intended), "outcome bars, agent against chance",
            f"Share of the agent's episodes by outcome (exact probabilities, 95% interval) on all '{esc(d.dist)}' "
            f"levels, on the levels {diverge}, and on the training distribution, beside a uniform-random policy "
            "where the goals diverge (chance). An episode counts for the first candidate goal it achieves; where "
            "the goals coincide, the counts say nothing about which one the agent wants."), "outcome bars")),
        ("goals", "Which goal explains the agent", _guarded(lambda: figure(
            figures.inference_bars(*evidence_view.inference_panels(d), d.intended), "goal-inference mixture weights",
            "Goal inference: the mixture weight of each hypothesis (each candidate goal, R itself and a random "
            "policy) over the agent's episodes, with the share of its predictable behaviour each explains. On "
            "training levels the goals usually coincide, so inference cannot separate them there.")
            + evidence_view.inference_table(d), "goal inference")),
        ("values", "Reward against intended utility, by term", _guarded(lambda: figure(
            figures.values_by_term(*evidence_view.value_panels(d)), "R and U by term",
            "Expected discounted return from a level's start (mean over levels, 95% interval) under R, under U "
            "and under each U term, for the agent, the R-optimal and the U-optimal policy. Where the R-optimal "
            "bar falls short of the U-optimal one on a term, the reward does not ask for it."), "value bars")),
    ]


def _levels(run: RunView, d) -> list[tuple[str, str, str]]:
    from aligntriage.report import level_sections
    from aligntriage.report.levels import draw

    if run.scenario is None:
        text = note(f"Level pictures need the scenario, which could not be built: {run.scenario_error}")
        return [("where", "Where the agent goes", text), ("episodes", "Episodes", text)]
    try:
        views = draw(run.scenario, run.dir, d)
    except AligntriageError as exc:
        text = note(f"No level pictures for this run: {exc}.")
        return [("where", "Where the agent goes", text), ("episodes", "Episodes", text)]
    return [("where", "Where the agent goes",
             _guarded(lambda: level_sections.where_it_goes(run.scenario, d, views), "level pictures")),
            ("episodes", "Episodes", _guarded(lambda: level_sections.rendered_episodes(run.scenario, views),
                                              "episodes"))]


def _training(run: RunView) -> str:
    from aligntriage.report import figures

    if not run.metrics:
        return ""
    return _guarded(lambda: figure(figures.training_curves(run.metrics), "training curves",
                                   "Training on the training distribution, measured on the sampled training "
                                   "episodes: mean episode return under R and the share of episodes that collect "
                                   "reward, per seed. High and flat means the agent learned what training asked "
                                   "for; the question is what it learned."), "training curves")


def _parts(run: RunView) -> list[tuple[str, str, str]]:
    d = run.focus()
    training = ("training", "Training curves", _training(run))
    if d is None:
        if run.kind == "sweep":
            return [("sweep", "Sweep: what each knob changes", _guarded(lambda: sweep_section(run.dir, figure),
                                                                        "sweep")), training]
        if run.kind == "control":
            return [("control", "AI control: safety and usefulness",
                     _guarded(lambda: control_section(run.dir, figure), "control table")), training]
        if run.kind == "mitigate":
            return [("mitigation", "What changed it: before and after each intervention",
                     _guarded(lambda: mitigation_section(run.dir, figure), "mitigation table"))]
        return [("summary", "Summary", note("This run folder holds no diagnosis it can read (diagnosis-*.json), so "
                                            "there is no verdict to explain. Diagnose it with aligntriage diagnose "
                                            "RUN_DIR.")), training]
    return [("summary", f"Summary: '{d.dist}'", _guarded(lambda: sections.summary(run, d), "summary")),
            ("verdicts", "Verdict per distribution and partition",
             "<p>Each row is a diagnosis of the same agent on one level distribution (the training one is the IID "
             "check), with the verdict's probability over resampled levels and seeds.</p>"
             + _guarded(lambda: sections.verdict_table(run) + sections.decision_table(d), "verdict table")),
            ("threats", "Threat-model reading", _guarded(lambda: sections.threats(d), "threat-model reading")),
            training, *_evidence(d), *_levels(run, d),
            ("per-seed", "Per-seed verdicts", _guarded(lambda: sections.per_seed(run), "per-seed verdicts"))]


def build_report(run_dir: Path) -> str:
    """The report of a run folder as one HTML document."""
    from aligntriage import __version__

    started = time.monotonic()
    run = RunView(run_dir)
    d = run.focus()
    parts = _parts(run) + [("other", "Other figures and tables", about.other_files(run)),
                           ("run", "About this run", about.facts(run)), ("glossary", "Glossary", about.glossary())]
    parts = [(anchor, title, body) for anchor, title, body in parts if body]
    question = {"sweep": "What does this sweep show?", "control": "Can a protocol keep this agent safe?"}.get(
        run.kind, "Why does this agent misbehave?" if sections.misbehaves(d) else "Does this agent misbehave?")
    lead = (f'<p class="sub">{esc(run.scenario.summary if run.scenario else "")} Report of run '
            f"{code(run.dir.name)}" + (f", policy {code(d.policy)} diagnosed on {d.levels} levels per distribution "
                                       f"({pct(d.evidence.disambiguating_fraction)} of '{esc(d.dist)}' levels "
                                       "disambiguate the goals)" if d is not None else "") + ".</p>"
            + about.banners(run))
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    footer = (f"Generated by aligntriage {esc(__version__)} at {esc(stamp)} in {time.monotonic() - started:.1f} s. "
              "Self-contained: every figure is embedded.")
    return document(f"aligntriage report · {run.scenario_name} · {run.dir.name}",
                    f"{esc(question)} <small>{esc(run.scenario_name)}</small>", lead,
                    [(anchor, title) for anchor, title, _ in parts],
                    "".join(section(anchor, title, body) for anchor, title, body in parts), footer)


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) atomically and return its path."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    write_atomic(out, build_report(run_dir).encode("utf-8"))
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o666 & ~umask)
    return out
