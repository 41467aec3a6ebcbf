"""``aligntriage control``: deployment protocols for a possibly misaligned agent, as a safety/usefulness table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from aligntriage.cli.app import ParamOption, app, console, parse_params, user_errors, writable_index
from aligntriage.control.protocols import PROTOCOLS


def _cell(cell: dict, pct: bool = True) -> str:
    fmt = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.3f}")
    if cell["high"] - cell["low"] < 5e-4:
        return fmt(cell["mean"])
    return f"{fmt(cell['mean'])} [{fmt(cell['low'])}, {fmt(cell['high'])}]"


def print_control(result: dict) -> None:
    s = result["settings"]
    table = Table(title=f"{result['scenario']}: AI control protocols (audit budget {s['audit_budget']:.0%}, "
                        f"{s['episodes']} episodes per deployment)")
    table.add_column("protocol", no_wrap=True)
    for column in ("usefulness (95% CI)", "safety (95% CI)", "red team's attack rate",
                   f"simulated safety ({s['deployments']} deployments)"):
        table.add_column(column)
    for row in result["protocols"]:
        sim = row.get("simulated")
        table.add_row(row["label"], _cell(row["usefulness"]), _cell(row["safety"]), f"{row['attack_rate']:.2g}",
                      _cell(sim) if sim else "–")
    console.print(table)
    refs, roles = result["references"], result["roles"]
    console.print(f"untrusted: {roles['untrusted']}; attack: {roles['attack']}; trusted: {roles['trusted']}; "
                  f"monitor: {roles['monitor']}.", markup=False, highlight=False)
    console.print(f"task return per episode: untrusted {refs['untrusted_task']:.3f}, trusted "
                  f"{refs['trusted_task']:.3f}; catastrophe per episode: attack {refs['attack_catastrophe']:.1%}, "
                  f"untrusted {refs['untrusted_catastrophe']:.1%}, trusted {refs['trusted_catastrophe']:.2g}; "
                  f"{s['levels']} '{s['dist']}' levels, seed {s['seed']}.", markup=False, highlight=False)


@app.command("control")
@user_errors
def control_command(
    scenario: str = typer.Argument(..., help="Scenario name (it needs a catastrophic U term)."),
    protocol: Optional[list[str]] = typer.Option(None, "--protocol", help="Protocol(s) to evaluate (repeatable; "
                                                 f"default all): {', '.join(PROTOCOLS)}."),
    audit_budget: float = typer.Option(0.02, "--audit-budget", help="Fraction of steps the audit may inspect."),
    defer_fraction: float = typer.Option(0.10, "--defer-fraction", help="Fraction of benign steps deferred to the "
                                         "trusted policy (defer to trusted)."),
    edit_fraction: float = typer.Option(0.20, "--edit-fraction", help="Fraction of benign episodes the trusted "
                                        "policy takes over (trusted editing)."),
    episodes: int = typer.Option(1000, "--episodes", help="Episodes per deployment."),
    deployments: int = typer.Option(200, "--deployments", help="Simulated deployments checking the exact "
                                    "safety."),
    levels: int = typer.Option(64, "--levels", help="Sampled levels in the deployment's pool."),
    dist: str = typer.Option("deploy", "--dist", help="Distribution the deployment's levels come from."),
    seed: int = typer.Option(0, "--seed", help="Seed of the levels, the bootstrap and the simulations."),
    untrusted: Optional[Path] = typer.Option(None, "--untrusted", help="A trained run folder to use as the "
                                             "untrusted (benign) policy instead of the U-optimal one."),
    trusted_affordances: Optional[str] = typer.Option(None, "--trusted-affordances", help="Affordance set of the "
                                                      "trusted policy (default: the smallest)."),
    untrusted_affordances: Optional[str] = typer.Option(None, "--untrusted-affordances", help="Affordance set of "
                                                        "the untrusted policy (default: the largest)."),
    trusted_temperature: float = typer.Option(0.1, "--trusted-temperature", help="Temperature of the trusted "
                                              "soft-optimal policy (higher: noisier, less useful)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/SCENARIO-control-TIME)."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Safety and usefulness of AI-control protocols (Greenblatt et al. 2024) against the red team's best attack
    rate; prints the table and saves control.json and control-pareto.png in a run folder."""
    from aligntriage.cli.main import at_least, default_run_dir
    from aligntriage.control.evaluate import ControlSettings
    from aligntriage.control.protocols import protocols_for
    from aligntriage.control.run import control, save_control_run
    from aligntriage.report.html import write_report
    from aligntriage.store.folder import RunFolder

    at_least(("--seed", seed, 0))
    settings = ControlSettings(audit_budget=audit_budget, defer_fraction=defer_fraction, edit_fraction=edit_fraction,
                               episodes=episodes, deployments=deployments, levels=levels, dist=dist, seed=seed,
                               trusted_temperature=trusted_temperature).validate()
    protocols_for(protocol, audit_budget, defer_fraction, edit_fraction)
    writable_index()
    folder = RunFolder(out or default_run_dir(scenario, "control"))
    with folder.claim(new=True):
        with console.status("control: enumerating levels, solving roles, evaluating protocols…"):
            result = control(scenario, settings, protocol, parse_params(params), untrusted, trusted_affordances,
                             untrusted_affordances)
        print_control(result)
        save_control_run(folder.path, result)
        console.print(f"saved {folder.file(RunFolder.CONTROL)} and {folder.file(RunFolder.PARETO)}", markup=False,
                      highlight=False)
        report = write_report(folder.path)
        folder.adopt(RunFolder.REPORT)
    console.print(f"report: {report}", markup=False, highlight=False)
