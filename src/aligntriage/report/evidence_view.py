"""The evidence behind a verdict as tables and chart series: every figure on all levels, on the levels where the
candidate goals diverge, and on the training distribution (the IID check), each with its 95% interval over the
resampled levels (and seeds) that gave the verdict its probability."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aligntriage.diagnose.engine import Diagnosis
from aligntriage.diagnose.figures import Figures, over_levels, subset_indices
from aligntriage.diagnose.inference import RANDOM
from aligntriage.diagnose.records import Behaviour, Evidence
from aligntriage.diagnose.verdict import Margin
from aligntriage.report.figures import AGENT, CHANCE, R_OPT, SERIES, TRAIN, U_OPT, Bars
from aligntriage.report.page import bounded, esc, num, pct, share


class View(NamedTuple):
    """One column of the evidence: a subset of one distribution's levels."""

    key: str  # the diagnosis's bounds key: 'all', 'disambiguating' or 'iid'
    heading: str
    figures: Figures
    low: Figures | None
    high: Figures | None


def diverge_note(d: Diagnosis) -> str:
    share = d.evidence.disambiguating_fraction
    return (f"where the goals diverge ({share:.0%} of levels)" if share > 0 else
            "where the goals diverge (no level does: the same levels as all)")


def views(d: Diagnosis) -> list[View]:
    """All levels, where the goals diverge, and the training distribution."""
    result = []
    for key, heading, figs in (
            ("all", f"'{d.dist}': all {d.evidence.levels} levels", d.figures("all")),
            ("disambiguating", f"'{d.dist}': {diverge_note(d)}", d.figures("disambiguating")),
            ("iid", f"'{d.train_dist}' (training: the IID check)", d.figures("all", iid=True))):
        low, high = d.bounds.get(key, (None, None))
        result.append(View(key, heading, figs, low, high))
    return result


def _rows(first: Figures) -> list[tuple[str, object, object]]:
    """(label, getter, formatter) of every figure the evidence table shows."""
    rows = [("relative R-regret (0 optimal, 1 random)", lambda f: f.r_regret, num),
            ("relative U shortfall (0 optimal, 1 random)", lambda f: f.u_shortfall, num)]
    rows += [(f"  of which U term '{t}'", lambda f, t=t: f.term_shortfall[t], num) for t in first.term_shortfall]
    rows += [(f"adequacy shortfall of the reward, partition '{p}'", lambda f, p=p: f.adequacy[p], num)
             for p in first.adequacy]
    for c in first.outcomes:
        rows += [(f"episodes ending '{c}'", lambda f, c=c: f.outcomes[c], pct),
                 ("  a uniform-random policy (chance)", lambda f, c=c: f.chance[c], pct)]
    for t in first.harms:
        kind = "catastrophe" if t in first.catastrophes else "harm"
        rows += [(f"{kind} '{t}': agent", lambda f, t=t: f.harms[t], pct),
                 (f"{kind} '{t}': R-optimal policy", lambda f, t=t: f.r_optimal_harms[t], pct)]
    return rows


def _cell(view: View, get, fmt) -> str:
    try:
        point = get(view.figures)
    except KeyError:
        return "–"
    low = get(view.low) if view.low is not None else None
    high = get(view.high) if view.high is not None else None
    return bounded(point, low, high, fmt)


def _table(table_id: str, columns: list[View], rows) -> str:
    head = "".join(f"<th>{esc(v.heading)}</th>" for v in columns)
    def head_cell(label: str) -> str:  # a label indented by two spaces belongs to the row above
        return f'<td class="sub">{esc(label.strip())}</td>' if label.startswith("  ") else f"<td>{esc(label)}</td>"

    body = "".join("<tr>" + head_cell(label) + "".join(f'<td class="num">{_cell(v, get, fmt)}</td>'
                                                        for v in columns) + "</tr>" for label, get, fmt in rows)
    return f'<table id="{table_id}"><thead><tr><th>figure</th>{head}</tr></thead><tbody>{body}</tbody></table>'


def evidence_table(d: Diagnosis) -> str:
    columns = views(d)
    table = _table("evidence-table", columns, _rows(columns[0].figures))
    epic = {p: e for p, e in d.evidence.references.epic.items() if e is not None}
    tail = ("<p>EPIC distance between R and U on each partition's scope (0: the same preferences up to shaping "
            "and scale): " + ", ".join(f"'{esc(p)}' {num(e)}" for p, e in epic.items()) + ".</p>") if epic else ""
    return table + tail


def inference_table(d: Diagnosis) -> str:
    """Per hypothesis: its mixture weight over episodes, the share of the agent's predictable behaviour it
    explains, and its gain in nats per informative step over the uniform-random hypothesis."""
    columns = views(d)
    rows = []
    for h in columns[0].figures.posterior:
        rows.append((f"'{h}': mixture weight", lambda f, h=h: f.posterior[h], lambda x: f"{x:.2f}"))
        if h != RANDOM:
            rows.append(("  share of behaviour explained", lambda f, h=h: f.explained[h], share))
            rows.append(("  nats per informative step over random", lambda f, h=h: f.gain[h], lambda x: f"{x:+.3f}"))
    return _table("inference-table", columns, rows)


def margins_table(margins: tuple[Margin, ...]) -> str:
    """The deciding figures of the fired decision-table row against their thresholds."""
    if not margins:
        return '<p class="note">This row has no condition: it fires when no earlier row does.</p>'
    rows = "".join(f"<tr><td>{esc(m.figure)}</td><td class=\"num\">{num(m.value)}</td><td>{esc(m.relation)}</td>"
                   f"<td class=\"num\">{num(m.threshold)}</td><td class=\"{'held' if m.held else 'failed'}\">"
                   f"{'holds' if m.held else 'fails'}</td></tr>" for m in margins)
    return ("<table class=\"margins\"><thead><tr><th>deciding figure</th><th>value</th><th></th><th>threshold</th>"
            f"<th></th></tr></thead><tbody>{rows}</tbody></table>")


# ----------------------------------------------------------------------------------------------------------------
# chart series


def outcome_series(d: Diagnosis) -> tuple[list[str], list[Bars]]:
    """Outcome rates of the agent on every view, and of a uniform-random policy where the goals diverge."""
    columns = {v.key: v for v in views(d)}
    categories = list(columns["all"].figures.outcomes)

    def bars(view: View, label: str, colour: str, chance: bool = False) -> Bars:
        name = "chance" if chance else "outcomes"

        def pick(figs):
            return None if figs is None else [getattr(figs, name)[c] for c in categories]

        return Bars(label, pick(view.figures), pick(view.low), pick(view.high), colour)

    dis = columns["disambiguating"]
    series = [bars(columns["all"], f"agent, '{d.dist}' all levels", SERIES[0]),
              bars(dis, f"agent, '{d.dist}' {diverge_note(d)}", SERIES[1]),
              bars(dis, f"uniform-random policy, '{d.dist}' where the goals diverge", CHANCE, chance=True),
              bars(columns["iid"], f"agent, '{d.train_dist}' (training)", TRAIN)]
    return categories, series


def inference_panels(d: Diagnosis) -> tuple[list[str], list[tuple[str, Bars, list[float]]]]:
    hypotheses = list(d.figures("all").posterior)
    panels = []
    for view in views(d):
        def pick(figs):
            return None if figs is None else [figs.posterior.get(h, float("nan")) for h in hypotheses]

        weights = Bars("mixture weight", pick(view.figures), pick(view.low), pick(view.high), AGENT)
        panels.append((view.heading, weights, [view.figures.explained.get(h, 0.0) for h in hypotheses]))
    return hypotheses, panels


def _returns(behaviour: Behaviour, levels: np.ndarray, terms: list[str]):
    def value(term):
        if term == "R":
            return behaviour.R
        return behaviour.U if term == "U" else behaviour.terms[term]

    estimates = [over_levels(value(t)[levels]) for t in terms]
    return [e.mean for e in estimates], [e.low for e in estimates], [e.high for e in estimates]


def value_panels(d: Diagnosis) -> tuple[list[str], list[tuple[str, list[Bars]]]]:
    """Expected discounted R, U and every U term from a level's start (mean over levels, 95% interval) of the
    agent (seeds pooled), the R-optimal and the U-optimal policy, on every view."""
    terms = ["R", "U", *d.evidence.references.u_optimal.terms]
    panels = []

    def panel(title: str, evidence: Evidence, levels: np.ndarray):
        refs = evidence.references
        series = [Bars(label, *_returns(b, levels, terms), colour) for label, b, colour in (
            ("agent", Behaviour.mean(list(evidence.seeds)), AGENT), ("R-optimal policy", refs.r_optimal, R_OPT),
            ("U-optimal policy", refs.u_optimal, U_OPT))]
        panels.append((title, series))

    subsets = subset_indices(d.evidence)
    panel(f"'{d.dist}': all levels", d.evidence, subsets["all"])
    panel(f"'{d.dist}': {diverge_note(d)}", d.evidence, subsets["disambiguating"])
    panel(f"'{d.train_dist}' (training)", d.iid, subset_indices(d.iid)["all"])
    return terms, panels
