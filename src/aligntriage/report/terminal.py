"""Rich tables of a diagnosis for the terminal: verdicts first, then the key evidence behind them."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aligntriage.diagnose.kinds import KINDS


def _num(x: float) -> str:
    return "–" if x != x else (f"{x:.3g}" if abs(x) >= 5e-4 else "0")


def _pct(x: float) -> str:
    return "–" if x != x else f"{x:.0%}"


def verdict_text(kind: str) -> str:
    """A verdict kind in its colour (rich markup)."""
    colour = KINDS[kind].colour if kind in KINDS else "white"
    return f"[{colour}]{kind}[/{colour}]"


def verdict_cell(verdict) -> str:
    """A verdict with its probability (rich markup): 'aligned 92%'; an abstention names the kind that leads it,
    'inconclusive (capability failure 82%)', since the probability belongs to that kind."""
    (lead, probability), *_ = verdict.leading(1) or [(verdict.kind, verdict.probability)]
    if lead != verdict.kind:
        return f"{verdict_text(verdict.kind)} ({lead} {probability:.0%})"
    return f"{verdict_text(verdict.kind)} {verdict.probability:.0%}"


def _with_bounds(point, low, high, fmt) -> str:
    if low is None or high is None or low != low or high != high:
        return fmt(point)
    return f"{fmt(point)} [{fmt(low)}, {fmt(high)}]"


def print_diagnosis(console: Console, diagnosis, explain: bool = True) -> None:
    d = diagnosis
    title = (f"{d.scenario} · policy {d.policy} · on '{d.dist}' ({d.levels} levels, IID check on '{d.train_dist}'"
             f", {d.seeds} seed{'s' if d.seeds > 1 else ''})" + (f" · affordances {d.affordances}" if d.affordances
                                                                  else ""))
    verdicts = Table(title=escape(title), show_lines=False)
    for column in ("partition", "reward scope", "verdict", "probability", "inferred goal",
                   "shortfall split (reward / training)"):
        verdicts.add_column(column)
    for v in d.verdicts:
        candidates = ", ".join(f"{k} {p:.0%}" for k, p in v.leading())
        verdicts.add_row(escape(v.partition), escape(", ".join(v.reward_scope)), verdict_text(v.kind),
                         candidates if len(v.candidates) > 1 else f"{v.probability:.0%}",
                         escape(v.inferred_goal or "–"), f"{v.split[0]:.0%} / {v.split[1]:.0%}")
    console.print(verdicts)

    views = [("all", False), ("disambiguating", False), ("iid", True)]
    figs = {name: d.figures("all" if name == "iid" else name, iid=iid) for name, iid in views}
    bounds = {name: d.bounds.get(name, (None, None)) for name, _ in views}
    share = figs["disambiguating"].share
    heads = {"all": f"{d.dist} (all levels)",
             "disambiguating": f"{d.dist} (goals diverge: {share:.0%})",
             "iid": f"{d.train_dist} (IID)"}
    interval = "levels and seeds" if d.seeds > 1 else "levels"
    evidence = Table(title=f"evidence (exact, over the {d.horizon}-step episode; 95% interval over resampled "
                           f"{interval})")
    evidence.add_column("measure")
    for name, _ in views:
        evidence.add_column(escape(heads[name]))

    def row(label, get, fmt=_num):
        cells = []
        for name, _ in views:
            low, high = bounds[name]
            try:
                cells.append(_with_bounds(get(figs[name]), None if low is None else get(low),
                                          None if high is None else get(high), fmt))
            except KeyError:
                cells.append("–")
        evidence.add_row(escape(label), *cells)

    row("relative R-regret", lambda f: f.r_regret)
    row("relative U shortfall", lambda f: f.u_shortfall)
    for term in figs["all"].term_shortfall:
        row(f"U:{term} shortfall (relative to U)", lambda f, t=term: f.term_shortfall[t])
    for partition in figs["all"].adequacy:
        row(f"adequacy shortfall ({partition})", lambda f, p=partition: f.adequacy[p])
    for outcome in figs["all"].outcomes:
        row(f"episodes: {outcome}", lambda f, o=outcome: f.outcomes[o], _pct)
        row("  by chance (uniform random)", lambda f, o=outcome: f.chance[o], _pct)
    for term in figs["all"].harms:
        kind = "catastrophe" if term in figs["all"].catastrophes else "harm"
        row(f"{kind} '{term}': agent", lambda f, t=term: f.harms[t], _pct)
        row(f"{kind} '{term}': R-optimal", lambda f, t=term: f.r_optimal_harms[t], _pct)
    for name in figs["all"].posterior:
        if name == "random":
            continue
        row(f"goal '{name}': share of behaviour explained", lambda f, n=name: f.explained[n], _pct)
        row(f"goal '{name}': mixture weight", lambda f, n=name: f.posterior[n], lambda x: f"{x:.2f}")
    console.print(evidence)
    epic = d.evidence.references.epic
    console.print("; ".join(f"EPIC(R, U scope of {escape(p)}): {'n/a' if value is None else f'{value:.3f}'}"
                            for p, value in epic.items()))
    if d.threats:
        threats = Table(title="threat-model reading (partition-free)")
        for column in ("failure", "agent rate", "R-optimal rate", "with it in R", "reading"):
            threats.add_column(column)
        for t in d.threats:
            counterfactual = "–" if t.counterfactual_rate is None else _pct(t.counterfactual_rate.mean)
            threats.add_row(escape(t.failure), _pct(t.agent_rate), _pct(t.r_optimal_rate), counterfactual,
                            f"{t.reading} ({t.basis})")
        console.print(threats)
    if d.oversight is not None:
        console.print(f"[bold]oversight ({escape(d.oversight.feature)})[/bold]: {escape(d.oversight.explanation)}")
    if d.per_seed:
        counts: dict[str, dict[str, int]] = {}
        for seed_verdicts in d.per_seed:
            for v in seed_verdicts:
                counts.setdefault(v.partition, {}).setdefault(v.kind, 0)
                counts[v.partition][v.kind] += 1
        console.print("per-seed verdicts: " + "; ".join(
            f"{escape(p)}: " + ", ".join(f"{v} ×{c}" for v, c in vs.items()) for p, vs in counts.items()))
    if explain:
        for v in d.verdicts:
            console.print(f"[bold]{escape(v.partition)}[/bold]: {escape(v.explanation)}")
        for t in d.threats:
            console.print(f"[bold]threat model, {escape(t.failure)}[/bold]: {escape(t.explanation)}")
