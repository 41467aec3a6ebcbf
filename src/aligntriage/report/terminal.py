"""Rich tables of a diagnosis for the terminal: verdicts first, then the key evidence behind them."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 5e-4 else "0"


def _ci(est: dict, pct: bool = False) -> str:
    if est.get("n", 0) == 0:
        return "–"
    if pct:
        return f"{est['mean']:.0%} [{est['low']:.0%}, {est['high']:.0%}]"
    return f"{_num(est['mean'])} [{_num(est['low'])}, {_num(est['high'])}]"


def print_diagnosis(console: Console, diagnosis, explain: bool = True) -> None:
    d = diagnosis
    deploy, train = d.evidence["deploy"], d.evidence["train"]
    title = (f"{d.scenario} · policy {d.policy} · on '{d.dist}' ({d.levels} levels, IID check on '{d.train_dist}')"
             + (f" · affordances {d.affordances}" if d.affordances else ""))
    verdicts = Table(title=title, show_lines=False)
    for column in ("partition", "reward scope", "verdict", "inferred goal", "shortfall split (reward / training)"):
        verdicts.add_column(column)
    for v in d.verdicts:
        colour = {"aligned": "green", "outer misalignment": "red", "inner misalignment": "magenta"}.get(
            v["verdict"], "yellow")
        verdicts.add_row(v["partition"], ", ".join(v["reward_scope"]), f"[{colour}]{v['verdict']}[/{colour}]",
                         v["inferred_goal"] or "–",
                         f"{v['split']['reward_scope']:.0%} / {v['split']['training_process']:.0%}")
    console.print(verdicts)

    evidence = Table(title="evidence (discounted values from the start state; 95% CI over levels)")
    evidence.add_column("measure")
    evidence.add_column(d.dist)
    evidence.add_column(f"{d.train_dist} (IID)")
    rows = [
        ("agent R", lambda e: _ci(e["values"]["agent"]["R"])),
        ("R-optimal R", lambda e: _ci(e["values"]["r_optimal"]["R"])),
        ("relative R-regret", lambda e: _num(e['relative_r_regret'])),
        ("agent U", lambda e: _ci(e["values"]["agent"]["U"])),
        ("U-optimal U", lambda e: _ci(e["values"]["u_optimal"]["U"])),
        ("relative U shortfall", lambda e: _num(e['relative_u_shortfall'])),
        ("disambiguating levels", lambda e: f"{e['disambiguating_fraction']:.0%}"),
    ]
    for term in deploy["term_shortfall"]:
        rows.append((f"U:{term} shortfall", lambda e, t=term: _ci(e["term_shortfall"][t])))
    for name in deploy["adequacy"]:
        rows.append((f"adequacy shortfall ({name})", lambda e, n=name: _num(e['adequacy'][n]['relative_shortfall'])))
        rows.append((f"EPIC(R, U scope of {name})",
                     lambda e, n=name: "n/a" if e["epic"][n] is None else f"{e['epic'][n]:.3f}"))
    for outcome in deploy["outcomes"]["disambiguating"]:
        rows.append((f"episodes: {outcome} (disambiguating)",
                     lambda e, o=outcome: _ci(e["outcomes"]["disambiguating"][o], pct=True)))
    for goal in deploy["goal_inference"]["goals"]:
        rows.append((f"{goal} first by chance (uniform random, disambiguating)",
                     lambda e, g=goal: _ci(e["outcomes"]["chance_disambiguating"][g], pct=True)
                     if "chance_disambiguating" in e["outcomes"] and e["disambiguating_fraction"] > 0 else "–"))
    for goal, info in deploy["goal_inference"]["goals"].items():
        rows.append((f"goal '{goal}': LL gain over random / posterior",
                     lambda e, g=goal: f"{e['goal_inference']['goals'][g]['gain_over_random']:+.3f} nats · "
                                       f"{e['goal_inference']['posterior'][g]:.2f}"))
    for label, fn in rows:
        evidence.add_row(label, fn(deploy), fn(train))
    console.print(evidence)
    if d.threat_model:
        threats = Table(title="threat-model reading (partition-free)")
        for column in ("catastrophic term", "agent rate", "R-optimal rate", "reading"):
            threats.add_column(column)
        for t in d.threat_model:
            threats.add_row(t["term"], f"{t['agent_rate']:.0%}", f"{t['r_optimal_rate']:.0%}", t["reading"])
        console.print(threats)
    if d.per_seed_verdicts:
        counts = {}
        for seed_verdicts in d.per_seed_verdicts:
            for partition, verdict in seed_verdicts.items():
                counts.setdefault(partition, {}).setdefault(verdict, 0)
                counts[partition][verdict] += 1
        console.print("per-seed verdicts: " + "; ".join(
            f"{p}: " + ", ".join(f"{v} ×{c}" for v, c in vs.items()) for p, vs in counts.items()))
    if explain:
        for v in d.verdicts:
            console.print(f"[bold]{v['partition']}[/bold]: {v['explanation']}")
        for t in d.threat_model:
            console.print(f"[bold]threat model, {t['term']}[/bold]: {t['explanation']}")
