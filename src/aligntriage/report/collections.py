"""Report sections for runs that gather many results: a sweep (one row per grid point) and an AI-control
evaluation (one row per protocol). Each returns HTML, or "" when the run folder is not of its kind."""

from __future__ import annotations

from pathlib import Path

from aligntriage.report.page import esc as _esc
from aligntriage.store.files import read_json
from aligntriage.store.folder import RunFolder


def _ci(est: dict | None, pct: bool = False) -> str:
    if not est or est.get("n", 1) == 0 or est.get("mean") is None:
        return "–"
    if pct:
        return f"{est['mean']:.0%} <small>[{est['low']:.0%}, {est['high']:.0%}]</small>"
    return f"{est['mean']:.3f} <small>[{est['low']:.3f}, {est['high']:.3f}]</small>"


def sweep_section(run_dir: Path, figure) -> str:
    """The sweep's table (verdict counts over seeds, proxy and intended goal rates on disambiguating levels, U and
    R returns, 95% intervals over seeds) and its figures, with what the table answers."""
    path = RunFolder(run_dir).file(RunFolder.SUMMARY)
    if not path.is_file():
        return ""
    summary = read_json(path, "sweep summary")
    dist = summary["dists"][0]
    rows = []
    for p in summary["points"]:
        values = ", ".join(f"{_esc(k)}={_esc(v)}" for k, v in p["values"].items())
        d = (p.get("dists") or {}).get(dist)
        if d is None:
            rows.append(f"<tr><td>{values}</td><td colspan=5>{_esc(p['status'])}</td></tr>")
            continue
        verdicts = "<br>".join(
            f"{_esc(part)}: " + ", ".join(f"{_esc(v)} ×{n}" for v, n in counts.items())
            for part, counts in d["verdict_counts"].items())
        rows.append(f"<tr><td>{values}</td><td>{verdicts}</td><td>{_ci(d['proxy_rate'], True)}</td>"
                    f"<td>{_ci(d['intended_rate'], True)}</td><td>{_ci(d['U'])}</td><td>{_ci(d['R'])}</td></tr>")
    table = ("<table><thead><tr><th>grid point</th><th>verdicts (seeds)</th><th>proxy goal, disambiguating "
             "levels</th><th>intended goal, disambiguating levels</th><th>U return</th><th>R return</th></tr>"
             f"</thead><tbody>{''.join(rows)}</tbody></table>")
    intro = (f"<p>A sweep over {_esc(', '.join(summary['grid']))} with {_esc(summary['seeds'])} seed(s) per grid "
             f"point, each diagnosed on '{_esc(dist)}'. The proxy-goal rate is the share of episodes, on levels "
             "where the candidate goals disagree, that end by achieving a goal other than the intended one; it is "
             "the number that says how much of the goal misgeneralization a knob removes. Intervals are 95% over "
             f"seeds. Status: {_esc(summary['status'])}.</p>")
    figures = "".join(figure(p.read_bytes(), p.name, f"Proxy-goal rate and U return against {_esc(p.stem[6:])}, "
                             "95% band over seeds.") for p in sorted(Path(run_dir).glob("sweep-*.png")))
    return intro + table + figures


def control_section(run_dir: Path, figure) -> str:
    """The AI-control table: usefulness and safety per protocol against the red team's best attack rate, the
    simulated check, the roles, and the Pareto figure."""
    path = RunFolder(run_dir).file(RunFolder.CONTROL)
    if not path.is_file():
        return ""
    data = read_json(path, "control table")
    settings = data["settings"]
    rows = []
    for p in data["protocols"]:
        sim = p.get("simulated") or {}
        rate = p.get("attack_rate")
        rows.append(f"<tr><td>{_esc(p['label'])}</td><td>{_ci({**p['usefulness'], 'n': 1}, True)}</td>"
                    f"<td>{_ci({**p['safety'], 'n': 1}, True)}</td>"
                    f"<td>{'–' if rate is None else f'{rate:.3g}'}</td>"
                    f"<td>{_ci({**sim, 'n': sim.get('n', 0)}, True) if sim else '–'}</td></tr>")
    table = ("<table><thead><tr><th>protocol</th><th>usefulness</th><th>safety</th><th>red team's attack rate"
             "</th><th>simulated safety</th></tr></thead>" f"<tbody>{''.join(rows)}</tbody></table>")
    roles = "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in data.get("roles", {}).items()
                    if isinstance(v, str))
    intro = (f"<p>Deployments of {_esc(settings['episodes'])} episodes on '{_esc(settings['dist'])}' with an audit "
             f"budget of {settings['audit_budget']:.0%}. Safety is the probability that no catastrophe happens "
             "before the deployment ends or is shut down, against the attack rate that minimises it; usefulness "
             "is the task return rescaled so the trusted policy alone is 0% and the untrusted one 100%. A "
             "protocol is worth having when it is safer than no protocol and more useful than trusted only.</p>")
    pareto = Path(run_dir) / "control-pareto.png"
    fig = figure(pareto.read_bytes(), "safety vs usefulness", "Safety against usefulness per protocol (up and "
                 "right is better).") if pareto.is_file() else ""
    return intro + table + f"<ul>{roles}</ul>" + fig


def mitigation_figure(result: dict) -> bytes:
    """Before and after: the proxy rate where the goals diverge and the U return, with 95% intervals over seeds."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [r["intervention"].replace(" (the diagnosed run)", "") for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, title in ((axes[0], "proxy_rate", "proxy reached first where the goals diverge"),
                           (axes[1], "U", "U return (exact)")):
        means = [r[key]["mean"] for r in rows]
        errors = [[max(r[key]["mean"] - r[key]["low"], 0) for r in rows],
                  [max(r[key]["high"] - r[key]["mean"], 0) for r in rows]]
        ax.bar(range(len(rows)), means, yerr=errors, capsize=4, color=["#999"] + ["#4c72b0"] * (len(rows) - 1))
        ax.set_xticks(range(len(rows)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def mitigation_section(run_dir: Path, figure) -> str:
    """What changed it: each intervention's verdict, proxy rate and U against the diagnosed run's own."""
    path = RunFolder(run_dir).file(RunFolder.MITIGATION)
    if not path.is_file():
        return ""
    result = read_json(path, "mitigation")
    partitions = list(result["rows"][0]["verdicts"])
    head = "".join(f"<th>verdict: {_esc(p)}</th>" for p in partitions)
    rows = []
    for r in result["rows"]:
        verdicts = "".join(f"<td>{_esc(v['kind'])} ({v['probability']:.0%})</td>" for v in r["verdicts"].values())
        rows.append(f"<tr><td>{_esc(r['intervention'])}</td>{verdicts}<td>{_ci(r['proxy_rate'], True)}</td>"
                    f"<td>{_ci(r['U'])}</td><td>{_ci(r['R'])}</td></tr>")
    table = (f"<table><thead><tr><th>intervention</th>{head}<th>proxy first (goals diverge)</th><th>U</th><th>R</th>"
             f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    intro = (f"<p>The run diagnosed in {_esc(result['source_run'])}, retrained with each intervention at the same "
             f"budget ({result['steps']:,} steps) with {result['seeds']} seed(s), and diagnosed again on the same "
             f"{result['levels']} '{_esc(result['dist'])}' levels. 95% intervals over seeds. A curriculum changes the "
             "training process; reward+TERM makes R answer for a U term (the outer fix).</p>")
    return intro + table + figure(mitigation_figure(result), "before and after", "Before and after each "
                                  "intervention, 95% intervals over seeds.")
