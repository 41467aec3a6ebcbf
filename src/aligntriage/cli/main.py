"""The ``aligntriage`` command line (typer + rich).

Every command turns a user mistake (unknown name, bad file) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from aligntriage.errors import AligntriageError
from aligntriage.train.ppo import PPOConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train agents in small exactly-solvable worlds and tell outer misalignment, inner misalignment and "
    "capability failure apart under a declared partition of responsibility.",
)
console = Console()
errors = Console(stderr=True)


def user_errors(fn):
    """Report AligntriageError as one line and exit 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AligntriageError as exc:
            errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def parse_params(items: list[str] | None) -> dict:
    """``KEY=VALUE`` level-parameter overrides; values are read as int, float or text."""
    params = {}
    for item in items or []:
        if "=" not in item:
            raise AligntriageError(f"level parameter '{item}' must look like KEY=VALUE")
        key, raw = item.split("=", 1)
        for cast in (int, float):
            try:
                params[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            params[key] = raw
    return params


ParamOption = typer.Option(None, "--param", "-p", help="Level parameter override KEY=VALUE (repeatable).")


@app.command()
@user_errors
def scenarios(name: Optional[str] = typer.Argument(None, help="Show one scenario in detail.")) -> None:
    """List the scenarios and their parts (distributions, R, U terms, goals, partitions, affordances)."""
    from aligntriage.worlds import get_scenario, scenario_names

    if name is not None:
        _scenario_detail(get_scenario(name))
        return
    table = Table(title="aligntriage scenarios", show_lines=True)
    table.add_column("scenario", no_wrap=True, style="bold")
    for column in ("distributions", "reward R", "U terms", "candidate goals", "partitions: reward scope",
                   "affordances"):
        table.add_column(column, overflow="fold")
    for scenario_name in scenario_names():
        sc = get_scenario(scenario_name)
        table.add_row(
            sc.name,
            "\n".join(sc.distributions),
            sc.reward_description,
            "\n".join(t.name + (" (catastrophic)" if t.catastrophic else "") for t in sc.utility.values()),
            "\n".join(g.name + (" (intended)" if g.intended else "") for g in sc.goals.values()),
            "\n".join(f"{p.name}: {', '.join(p.reward_scope)}" for p in sc.partitions.values()),
            "\n".join(sc.affordances),
        )
    console.print(table)
    for scenario_name in scenario_names():
        console.print(f"[bold]{scenario_name}[/bold]: {get_scenario(scenario_name).summary}")
    console.print("Details: aligntriage scenarios NAME")


def _scenario_detail(sc) -> None:
    console.print(f"[bold]{sc.name}[/bold] — {sc.summary}\n")
    console.print(sc.doc.strip(), markup=False)
    parts = Table(show_header=True, title="parts")
    parts.add_column("part")
    parts.add_column("name")
    parts.add_column("description", overflow="fold")
    for dist in sc.distributions.values():
        parts.add_row("distribution", dist.name, dist.description)
    parts.add_row("reward R", "reward", sc.reward_description)
    for term in sc.utility.values():
        parts.add_row("U term", term.name + (" (catastrophic)" if term.catastrophic else ""), term.description)
    for goal in sc.goals.values():
        parts.add_row("goal", goal.name + (" (intended)" if goal.intended else ""), goal.description)
    for part in sc.partitions.values():
        parts.add_row("partition", part.name, f"reward covers {', '.join(part.reward_scope)} — {part.description}")
    for aff in sc.affordances.values():
        parts.add_row("affordances", aff.name, f"{', '.join(aff.actions)} — {aff.description}")
    parts.add_row("level params", "", ", ".join(f"{k}={v}" for k, v in sc.params.items()))
    console.print(parts)


@app.command()
@user_errors
def show(
    scenario: str = typer.Argument(..., help="Scenario name or path to a scenario file."),
    dist: str = typer.Option("train", "--dist", help="Level distribution to sample from."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled level."),
    png: Optional[str] = typer.Option(None, "--png", help="Also draw the level to this PNG file."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Render a sampled level as text (and optionally PNG)."""
    import jax

    from aligntriage.worlds import get_scenario

    sc = get_scenario(scenario, **parse_params(params))
    level = jax.jit(sc.distribution(dist).sample)(jax.random.PRNGKey(seed))
    state = sc.world.reset(jax.random.PRNGKey(seed), level)
    console.print(f"[bold]{sc.name}[/bold]  dist={dist}  seed={seed}")
    for row in sc.world.render(state):
        console.print(row, markup=False, highlight=False)
    if png:
        from aligntriage.report.picture import save_state_png

        save_state_png(sc.world, state, png, title=f"{sc.name} · {dist} · seed {seed}")
        console.print(f"wrote {png}")


def default_run_dir(scenario: str, kind: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(scenario).stem}-{kind}-{stamp}"


@app.command()
@user_errors
def train(
    scenario: str = typer.Argument(..., help="Scenario name or path to a scenario file."),
    dist: str = typer.Option("train", "--dist", help="Training distribution."),
    steps: int = typer.Option(PPOConfig.total_steps, "--steps", help="Environment steps per seed."),
    seeds: int = typer.Option(1, "--seeds", help="Seeds trained together in one vmapped call."),
    seed: int = typer.Option(0, "--seed", help="First seed."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/SCENARIO-train-TIME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    envs: int = typer.Option(PPOConfig.num_envs, "--envs", help="Parallel environments per seed."),
    width: int = typer.Option(PPOConfig.width, "--width", help="Hidden units per layer."),
    depth: int = typer.Option(PPOConfig.depth, "--depth", help="Hidden layers."),
    network: str = typer.Option(PPOConfig.network, "--network", help="mlp or cnn."),
    ent_coef: float = typer.Option(PPOConfig.ent_coef, "--ent-coef", help="Entropy bonus coefficient."),
    gamma: float = typer.Option(PPOConfig.gamma, "--gamma", help="Discount."),
    lr: float = typer.Option(PPOConfig.lr, "--lr", help="Adam learning rate (annealed to 0)."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Train PPO on a scenario's training distribution, with R only."""
    if resume and out is None:
        raise AligntriageError("--resume needs --out RUN_DIR")
    config = PPOConfig(dist=dist, total_steps=steps, seeds=seeds, seed=seed, num_envs=envs, width=width,
                       depth=depth, network=network, ent_coef=ent_coef, gamma=gamma, lr=lr)
    run_dir = out or default_run_dir(scenario, "train")
    record = run_training(scenario, config, run_dir, parse_params(params), resume)
    console.print(f"run {record['status']}: {run_dir}")
    if record["status"] == "interrupted":
        console.print(f"resume with: aligntriage train {scenario} --resume --out {run_dir}")
        raise typer.Exit(130)


def run_training(scenario: str, config: PPOConfig, run_dir: Path, params: dict, resume: bool) -> dict:
    """Train with a rich progress bar showing steps, steps/s, mean return and success rate."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aligntriage.train.loop import train as train_loop

    columns = (TextColumn("[bold]train[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=None, info="compiling…")

        def on_progress(p: dict) -> None:
            info = (f"{p['steps_per_s']:,.0f} steps/s  return {p['mean_return']:.3f}  "
                    f"success {p['success_rate']:.0%}")
            progress.update(task, completed=p["steps"], total=p["total_steps"], info=info)

        return train_loop(scenario, config, run_dir, params=params, resume=resume, on_progress=on_progress)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
