"""The ``aligntriage`` command line (typer + rich).

Every command turns a user mistake (unknown name, bad file) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from aligntriage.cli.app import (  # noqa: F401
    ParamOption,
    app,
    console,
    errors,
    parse_params,
    user_errors,
)
from aligntriage.errors import AligntriageError
from aligntriage.train.ppo import PPOConfig


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


def require_jax_world(sc) -> None:
    """aligntriage's PPO trains JAX worlds only; a scenario enumerated through another package's environment
    (MiniGrid) is trained elsewhere and diagnosed with --policy sb3:PATH.zip."""
    if sc.source is not None:
        raise AligntriageError(
            f"scenario '{sc.name}' runs on its own environment (not JAX), which aligntriage's PPO cannot train: "
            f"train it with Stable-Baselines3 on gymnasium.make('aligntriage/{sc.name}-v0') and diagnose with "
            "--policy sb3:PATH.zip")


def default_run_dir(scenario: str, kind: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(scenario).stem}-{kind}-{stamp}"


def training_config(scenario, **options) -> PPOConfig:
    """Training settings: PPOConfig defaults, then the scenario's own defaults, then what the user typed."""
    settings = {**scenario.training, **{k: v for k, v in options.items() if v is not None}}
    return PPOConfig.from_dict(settings)


def _opt(name: str, help_text: str):
    return typer.Option(None, f"--{name}", help=f"{help_text} (default {getattr(PPOConfig, name.replace('-', '_'))})")


@app.command()
@user_errors
def train(
    scenario: str = typer.Argument(..., help="Scenario name or path to a scenario file."),
    dist: str = typer.Option("train", "--dist", help="Training distribution."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Environment steps per seed (default "
                                        f"{PPOConfig.total_steps}, or the scenario's own budget)."),
    seeds: int = typer.Option(1, "--seeds", help="Seeds trained together in one vmapped call."),
    seed: int = typer.Option(0, "--seed", help="First seed."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/SCENARIO-train-TIME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    envs: Optional[int] = typer.Option(None, "--envs", help=f"Parallel environments per seed (default "
                                       f"{PPOConfig.num_envs})."),
    width: Optional[int] = _opt("width", "Hidden units per layer."),
    depth: Optional[int] = _opt("depth", "Hidden layers."),
    network: Optional[str] = _opt("network", "mlp or cnn."),
    ent_coef: Optional[float] = typer.Option(None, "--ent-coef", help="Entropy bonus coefficient (default "
                                             f"{PPOConfig.ent_coef}, or the scenario's own)."),
    gamma: Optional[float] = _opt("gamma", "Discount."),
    lr: Optional[float] = _opt("lr", "Adam learning rate (annealed to 0)."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Train PPO on a scenario's training distribution, with R only."""
    from aligntriage.worlds import get_scenario

    if resume and out is None:
        raise AligntriageError("--resume needs --out RUN_DIR")
    sc = get_scenario(scenario, **parse_params(params))
    require_jax_world(sc)
    sc.distribution(dist)
    config = training_config(sc, dist=dist, total_steps=steps, seeds=seeds, seed=seed, num_envs=envs, width=width,
                             depth=depth, network=network, ent_coef=ent_coef, gamma=gamma, lr=lr)
    run_dir = out or default_run_dir(scenario, "train")
    record = run_training(scenario, config, run_dir, parse_params(params), resume)
    console.print(f"run {record['status']}: {run_dir}")
    if record["status"] == "interrupted":
        console.print(f"resume with: aligntriage train {scenario} --resume --out {run_dir}")
        raise typer.Exit(130)


def run_training(scenario: str, config: PPOConfig, run_dir: Path, params: dict, resume: bool,
                 kind: str = "train") -> dict:
    """Train with a rich progress bar showing steps, steps/s, mean return and success rate."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from aligntriage.train.loop import train as train_loop

    columns = (TextColumn("[bold]train[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=None, info="compiling…")

        def on_progress(p: dict) -> None:
            info = (f"{p['steps_per_s']:,.0f} steps/s  return {p['mean_return']:.3f}  "
                    f"success {p['success_rate']:.0%}")
            progress.update(task, completed=p["steps"], total=p["total_steps"], info=info)

        return train_loop(scenario, config, run_dir, params=params, resume=resume, on_progress=on_progress,
                          kind=kind)


def tolerances_from(items: list[str] | None):
    """Verdict tolerances with ``KEY=VALUE`` overrides."""
    import dataclasses

    from aligntriage.diagnose import Tolerances
    from aligntriage.errors import UnknownName

    valid = [f.name for f in dataclasses.fields(Tolerances)]
    overrides = parse_params(items)
    for key, value in overrides.items():
        if key not in valid:
            raise UnknownName("tolerance", key, valid)
        if not isinstance(value, (int, float)):
            raise AligntriageError(f"tolerance {key} must be a number, got '{value}'")
    return Tolerances(**{k: float(v) for k, v in overrides.items()})


def _external_policy(sc, policy: str, arch: Optional[str]):
    """An ``sb3:``/``torch:`` policy checked against the scenario's observations; archive warnings as one line each."""
    import warnings

    from aligntriage.interop.policies import ArchiveWarning, load_policy_spec, observation_shape

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ArchiveWarning)
        loaded = load_policy_spec(policy, arch)
    for warning in caught:
        if issubclass(warning.category, ArchiveWarning):
            errors.print(f"warning: {warning.message}", markup=False, highlight=False, soft_wrap=True)
    loaded.check(observation_shape(sc), sc.world.num_actions, sc.name)
    return loaded


def _policies_for(target: str, policy: Optional[str], params: dict, arch: Optional[str] = None):
    """(scenario, policies, label, run folder or None) from a run folder or a scenario plus --policy NAME."""
    from aligntriage.solve.policies import scripted_names, split_noise
    from aligntriage.train.loop import load_policy, read_run
    from aligntriage.worlds import get_scenario

    if arch is not None and not (policy or "").startswith("torch:"):
        raise AligntriageError("--arch applies to --policy torch:PATH only")
    if policy is not None and policy.startswith(("sb3:", "torch:")):
        sc = get_scenario(target, **params)
        return sc, [_external_policy(sc, policy, arch)], policy, None
    if policy is not None:
        sc = get_scenario(target, **params)
        if split_noise(policy)[0] not in scripted_names(sc):
            from aligntriage.errors import UnknownName

            raise UnknownName("policy", policy, scripted_names(sc) + ["sb3:PATH.zip", "torch:PATH"],
                              f"scenario '{sc.name}'")
        return sc, [policy], policy, None
    run_dir = Path(target)
    if not run_dir.is_dir():
        from aligntriage.worlds import scenario_names

        if target in scenario_names():
            raise AligntriageError(f"'{target}' is a scenario: add --policy NAME (a scripted policy) or give a run "
                                   "folder")
        raise AligntriageError(f"run folder '{target}' does not exist")
    record = read_run(run_dir)
    sc = get_scenario(record["scenario"], **record["params"])
    seeds = record["ppo"]["seeds"]
    return sc, [load_policy(run_dir, s) for s in range(seeds)], f"trained ({run_dir.name})", run_dir


@app.command("diagnose")
@user_errors
def diagnose_command(
    target: str = typer.Argument(..., help="A run folder, or a scenario name together with --policy NAME."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Scripted policy: random, r-optimal, u-optimal, "
                                         "goal:NAME; append @EPS to act at random with probability EPS "
                                         "(goal:coin@0.5). Or an agent trained elsewhere: sb3:PATH.zip "
                                         "(Stable-Baselines3 PPO/A2C/DQN), torch:PATH (TorchScript, or a state "
                                         "dict with --arch)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Architecture of a torch state dict (--policy "
                                       "torch:PATH): mlp or mlp-tanh, NAME:PREFIX for the layers under PREFIX."),
    dist: str = typer.Option("deploy", "--dist", help="Distribution to diagnose on."),
    partition: Optional[list[str]] = typer.Option(None, "--partition", help="Partition(s) to judge (default: all)."),
    affordances: Optional[str] = typer.Option(None, "--affordances", help="Affordance set (default: all actions)."),
    levels: int = typer.Option(200, "--levels", help="Sampled levels per distribution."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled levels and episodes."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the diagnosis JSON here."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder for a scripted policy's diagnosis (default "
                                       "runs/SCENARIO-diagnose-TIME); a trained run's diagnosis goes in its folder."),
    tolerance: Optional[list[str]] = typer.Option(None, "--tol", help="Verdict tolerance override KEY=VALUE, "
                                                  "e.g. --tol aligned=0.05 (keys: aligned, regret, adequacy, "
                                                  "explains, outcome_lift, train_regret)."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Diagnose a trained run or a scripted policy: verdict per partition, evidence, threat-model reading."""
    from aligntriage.diagnose import diagnose
    from aligntriage.report.terminal import print_diagnosis
    from aligntriage.store import index_run
    from aligntriage.store.files import write_json

    sc, policies, label, run_dir = _policies_for(target, policy, parse_params(params), arch)
    with console.status("diagnosing: enumerating levels, solving, sampling episodes…"):
        result = diagnose(policies, sc, dist=dist, partitions=partition, affordances=affordances, levels=levels,
                          seed=seed, policy_label=label, tolerances=tolerances_from(tolerance))
    print_diagnosis(console, result)
    payload = json.loads(result.to_json())
    if run_dir is None:
        run_dir = out or default_run_dir(target, "diagnose")
        if (run_dir / "run.json").exists():
            raise AligntriageError(f"run folder '{run_dir}' already holds a run; choose another --out")
        write_json(run_dir / "run.json", {
            "kind": "diagnose", "scenario": target, "params": parse_params(params), "policy": policy, "dist": dist,
            "status": "complete", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    write_json(run_dir / f"diagnosis-{dist}.json", payload)
    run_id = index_run(run_dir)
    console.print(f"saved {run_dir / f'diagnosis-{dist}.json'} (run {run_id})")
    if json_out:
        write_json(json_out, payload)


@app.command()
@user_errors
def run(
    scenario: str = typer.Argument(..., help="Scenario name or path to a scenario file."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training environment steps per seed (default "
                                        f"{PPOConfig.total_steps}, or the scenario's own budget)."),
    seeds: int = typer.Option(1, "--seeds", help="Seeds trained together."),
    dist: str = typer.Option("train", "--dist", help="Training distribution."),
    levels: int = typer.Option(200, "--levels", help="Sampled levels per diagnosed distribution."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/SCENARIO-run-TIME)."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Train on the training distribution, diagnose on every distribution and partition, save everything."""
    from aligntriage.diagnose import diagnose_many
    from aligntriage.report.html import write_report
    from aligntriage.report.terminal import print_diagnosis
    from aligntriage.store import index_run
    from aligntriage.store.files import write_json
    from aligntriage.train.loop import load_policy
    from aligntriage.worlds import get_scenario

    level_params = parse_params(params)
    sc = get_scenario(scenario, **level_params)
    require_jax_world(sc)
    sc.distribution(dist)
    run_dir = out or default_run_dir(scenario, "run")
    config = training_config(sc, dist=dist, total_steps=steps, seeds=seeds)
    record = run_training(scenario, config, run_dir, level_params, resume=False, kind="run")
    if record["status"] != "complete":
        console.print(f"training interrupted; resume with: aligntriage train {scenario} --resume --out {run_dir}")
        raise typer.Exit(130)
    policies = [load_policy(run_dir, s) for s in range(seeds)]
    dists = [dist] + [d for d in sc.distributions if d != dist]
    with console.status(f"diagnosing on {len(dists)} distributions…"):
        results = diagnose_many(policies, sc, dists, levels=levels, train_dist=dist,
                                policy_label=f"trained on {dist}")
    summary = Table(title=f"{sc.name}: verdicts of the agent trained on '{dist}'")
    summary.add_column("diagnosed on")
    for partition in sc.partitions:
        summary.add_column(f"partition '{partition}'")
    summary.add_column("inferred goal")
    for name, result in results.items():
        write_json(run_dir / f"diagnosis-{name}.json", json.loads(result.to_json()))
        summary.add_row(name, *[v["verdict"] for v in result.verdicts], result.verdicts[0]["inferred_goal"] or "–")
    run_id = index_run(run_dir)
    print_diagnosis(console, results[dists[1]] if len(dists) > 1 else results[dist])
    console.print(summary)
    console.print(f"saved run {run_id} and its diagnoses in {run_dir}")
    with console.status("writing the HTML report…"):
        report = write_report(run_dir)
    console.print(f"report: {report}")


def main() -> None:
    app()


def _register_commands() -> None:
    """Import the command modules that live beside this one so their commands join ``app``."""
    import importlib

    for module in ("runs", "report", "sweep", "control"):
        try:
            importlib.import_module(f"aligntriage.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aligntriage.cli.{module}":
                raise


_register_commands()


if __name__ == "__main__":
    sys.exit(main())
