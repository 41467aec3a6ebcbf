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
