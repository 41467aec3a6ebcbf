"""The report's answers: what went wrong (the verdict per partition with its probability), why we think so (the
decision-table row that fired, its deciding figures against their thresholds, the seed definition it cites, the
evidence on all levels and where the goals diverge) and what would change it (the kinds table's advice); then
the verdict of every diagnosed distribution, the threat-model reading and the per-seed verdicts."""

from __future__ import annotations

import numpy as np

from aligntriage.diagnose.engine import Diagnosis
from aligntriage.diagnose.inference import RANDOM
from aligntriage.diagnose.kinds import ALIGNED, INCONCLUSIVE, KINDS, MIXED
from aligntriage.diagnose.records import Behaviour
from aligntriage.diagnose.uncertainty import Verdict
from aligntriage.diagnose.verdict import TABLE, row
from aligntriage.report.evidence_view import diverge_note, margins_table
from aligntriage.report.folder import RunView
from aligntriage.report.page import badge, code, esc, num, pct, share


def _partition(v: Verdict) -> str:
    return f"Under partition '{esc(v.partition)}' (the reward covers {esc(', '.join(v.reward_scope) or 'nothing')})"


def verdict_badge(v: Verdict) -> str:
    """The kind with its probability; an inconclusive verdict has none of its own (its candidates do)."""
    return badge(v.kind) if v.kind == INCONCLUSIVE else badge(v.kind, v.probability)


def _uncertainty(v: Verdict) -> str:
    """What an inconclusive or mixed verdict means here."""
    if v.kind == INCONCLUSIVE:
        names = " and ".join(f"{badge(k, p)}" for k, p in v.leading(2))
        return f" The two leading candidates are {names}. {esc(KINDS[INCONCLUSIVE].glossary)}"
    if v.kind == MIXED:
        inside, outside = v.split
        return (f" Of the shortfall in U, {pct(inside)} lies in terms the reward is responsible for (the outer part) "
                f"and {pct(outside)} in terms left to the training process (the inner part).")
    return ""


def what_went_wrong(run: RunView, d: Diagnosis) -> list[str]:
    agent = Behaviour.mean(list(d.evidence.seeds))
    best = d.evidence.references.u_optimal
    desc = run.describe(d.dist)
    where = f"On '{esc(d.dist)}'" + (f" ({esc(desc)})" if desc else "")
    figs = d.figures("all")
    worse = " here: worse than acting at random" if figs.u_shortfall > 1 else ""
    items = [f"{where} the agent's intended utility U averages {num(float(np.mean(agent.U)))} per episode "
             f"(expected discounted, from a level's start) where {num(float(np.mean(best.U)))} was achievable: a "
             f"relative shortfall of {num(figs.u_shortfall)} (0 is optimal, 1 no better than acting at random{worse})."]
    for v in d.verdicts:
        goal = f", behaving as if pursuing '{esc(v.inferred_goal)}'" if v.inferred_goal else ""
        items.append(f"{_partition(v)}: {verdict_badge(v)}{goal}.{_uncertainty(v)}"
                     f'<p class="explain">{esc(v.explanation)}</p>')
    dis = d.figures("disambiguating")
    ends = ", ".join(f"'{esc(c)}' {pct(r)} (chance {pct(dis.chance[c])})" for c, r in dis.outcomes.items())
    items.append(f"On '{esc(d.dist)}' {esc(diverge_note(d))}, its episodes end: {ends}.")
    return items


def why_we_think_so(d: Diagnosis) -> list[str]:
    items = []
    for v in d.verdicts:
        fired = row(v.row)
        items.append(f"{_partition(v)}, row {code(fired.id)} of the decision table fired (the first row whose "
                     f"every condition holds; see the table below): {esc(fired.says)}{margins_table(v.margins)}"
                     f"It implements: <blockquote>{esc(fired.cites)}</blockquote>")
    every, dis, iid = d.figures("all"), d.figures("disambiguating"), d.figures("all", iid=True)
    items.append(f"Relative R-regret {num(every.r_regret)} on all '{esc(d.dist)}' levels and {num(dis.r_regret)} "
                 f"{esc(diverge_note(d))}; relative U shortfall {num(every.u_shortfall)} and {num(dis.u_shortfall)}. "
                 f"IID check: on the training distribution '{esc(d.train_dist)}' the R-regret is {num(iid.r_regret)} "
                 f"(it fails there above {num(d.tolerances.train_regret)}).")
    weights = ", ".join(f"'{esc(h)}' {w:.2f}" + ("" if h == RANDOM else f" (explains {esc(share(dis.explained[h]))})")
                        for h, w in sorted(dis.posterior.items(), key=lambda hw: -hw[1]))
    items.append(f"Goal inference {esc(diverge_note(d))}: mixture weights over episodes {weights}. A hypothesis "
                 f"counts as the goal pursued when it explains at least {pct(d.tolerances.explained)} of the "
                 "agent's predictable behaviour.")
    return items


def what_would_change_it(d: Diagnosis) -> list[str]:
    items = []
    for kind in dict.fromkeys(v.kind for v in d.verdicts):
        items.append(f"{badge(kind)}: {esc(KINDS[kind].advice)}")
        if kind == INCONCLUSIVE:
            for v in d.verdicts:
                for candidate, _ in v.leading(2):
                    items.append(f"If more evidence shows {badge(candidate)} under '{esc(v.partition)}': "
                                 f"{esc(KINDS[candidate].advice)}")
    tolerances = ", ".join(f"{k}={v}" for k, v in d.tolerances.to_dict().items())
    items.append(f"The thresholds are tolerances ({esc(tolerances)}); change one with "
                 f"{code('aligntriage diagnose RUN_DIR --tol aligned=0.05')}.")
    return list(dict.fromkeys(items))


def summary(run: RunView, d: Diagnosis) -> str:
    cards = [("wrong", "What went wrong", what_went_wrong(run, d)), ("why", "Why we think so", why_we_think_so(d)),
             ("change", "What would change it", what_would_change_it(d))]
    return '<div class="summary">' + "".join(
        f'<div class="card {c}"><h3>{esc(t)}</h3><ul>' + "".join(f"<li>{item}</li>" for item in items)
        + "</ul></div>" for c, t, items in cards) + "</div>"


def decision_table(d: Diagnosis) -> str:
    """Every row in order, the ones that fired for the focus diagnosis marked."""
    fired = {v.row for v in d.verdicts}
    rows = "".join(f'<tr{" class=focus" if r.id in fired else ""}><td class="num">{k + 1}</td><td>{code(r.id)}</td>'
                   f"<td>{badge(r.kind)}</td><td>{esc(r.says)}</td><td><small>{esc(r.cites)}</small></td></tr>"
                   for k, r in enumerate(TABLE))
    return ("<details><summary>The decision table (rows are tried in order; the first whose conditions all hold "
            "gives the verdict)</summary><table id=\"decision-table\"><thead><tr><th></th><th>row</th><th>kind</th>"
            f"<th>when</th><th>the definition it implements</th></tr></thead><tbody>{rows}</tbody></table></details>")


def verdict_table(run: RunView) -> str:
    partitions = list(dict.fromkeys(v.partition for d in run.diagnoses.values() for v in d.verdicts))
    head = "".join(f"<th>partition '{esc(p)}'</th>" for p in partitions)
    focus = run.focus()
    rows, details = [], []
    for dist, d in run.diagnoses.items():
        by = {v.partition: v for v in d.verdicts}
        cells = "".join("<td>–</td>" if p not in by else f"<td>{verdict_badge(by[p])}"
                        + (f"<br><small>goal: {esc(by[p].inferred_goal)}</small>" if by[p].inferred_goal else "")
                        + "</td>" for p in partitions)
        figs = d.figures("all")
        role = " (training)" if dist == d.train_dist else ""
        rows.append(f"<tr{' class=focus' if d is focus else ''}><td><b>{esc(dist)}</b>{esc(role)}<br><small>"
                    f"{esc(run.describe(dist))}</small></td>{cells}<td class=\"num\">{num(figs.r_regret)}</td>"
                    f"<td class=\"num\">{num(figs.u_shortfall)}</td>"
                    f"<td class=\"num\">{pct(d.evidence.disambiguating_fraction)}</td></tr>")
        paragraphs = "".join(f'<p class="explain">{esc(v.explanation)}</p>' for v in d.verdicts)
        details.append(f"<details><summary>Why: '{esc(dist)}'</summary>"
                       f"{paragraphs}</details>")
    table = (f'<table id="verdict-table"><thead><tr><th>diagnosed on</th>{head}<th>relative R-regret</th>'
             f"<th>relative U shortfall</th><th>levels where the goals diverge</th></tr></thead><tbody>"
             f"{''.join(rows)}</tbody></table>")
    return table + "".join(details)


def threats(d: Diagnosis) -> str:
    if not d.threats:
        return "<p>No threat-model reading was made for this diagnosis.</p>"

    def counterfactual(t) -> str:
        return "–" if t.counterfactual_rate is None else pct(t.counterfactual_rate.mean)

    rows = "".join(f"<tr><td>{esc(t.failure)}</td><td class=\"num\">{pct(t.agent_rate)}</td>"
                   f"<td class=\"num\">{pct(t.r_optimal_rate)}</td><td class=\"num\">{counterfactual(t)}</td>"
                   f"<td><b>{esc(t.reading)}</b> ({esc(t.basis)})</td><td>{esc(t.explanation)}</td></tr>"
                   for t in d.threats)
    return ("<p>Partition-free: for each failure (a harm or tampering term of U, or else pursuit of a proxy), did the "
            "reward signal cause it (outer-misalignment threat) or would it happen regardless (inner)? The "
            "counterfactual adds the failure's terms to R and asks whether it disappears. On "
            f"'{esc(d.dist)}':</p>"
            '<table id="threat-table"><thead><tr><th>failure</th><th>agent rate</th><th>R-optimal rate</th>'
            "<th>with the term in R</th><th>reading</th><th>explanation</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def per_seed(run: RunView) -> str:
    """One row per trained seed and diagnosed distribution: each seed judged on its own evidence."""
    rows = []
    for dist, d in run.diagnoses.items():
        for k, verdicts in enumerate(d.per_seed):
            cells = "".join(f"<td>{verdict_badge(v)}</td>" for v in verdicts)
            rows.append(f"<tr><td>{esc(dist)}</td><td class=\"num\">{k}</td>{cells}</tr>")
    if not rows:
        return ("<p>One seed was diagnosed, so its verdict is the verdict above. With several seeds each is also "
                "judged alone here, and the pooled verdict's probability resamples seeds as well as levels.</p>")
    focus = run.focus()
    heads = "".join(f"<th>partition '{esc(v.partition)}'</th>" for v in focus.verdicts)
    return ("<p>Each seed judged on its own evidence (with its own probability over resampled levels).</p>"
            f'<table id="per-seed-table"><thead><tr><th>diagnosed on</th><th>seed</th>{heads}</tr></thead><tbody>'
            f"{''.join(rows)}</tbody></table>")


def misbehaves(d: Diagnosis | None) -> bool:
    return d is not None and any(v.kind != ALIGNED for v in d.verdicts)
