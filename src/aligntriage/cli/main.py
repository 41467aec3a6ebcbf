"""The ``aligntriage`` command line (typer + rich).

Every command turns a user mistake (unknown name, bad file) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from aligntriage.cli.app import (  # noqa: F401
    ParamOption,
    app,
    at_least,
    console,
    errors,
    parse_params,
    user_errors,
    writable_index,
)
from aligntriage.errors import AligntriageError
from aligntriage.store.files import json_bytes, write_json
from aligntriage.train.ppo import CURATOR_FIELDS, CURRICULA, PPOConfig


@app.command()
@user_errors
def scenarios(name: Optional[str] = typer.Argument(None, help="Show one scenario in detail.")) -> None:
    """List the scenarios and their parts (distributions, R, U terms, goals, partitions, affordances)."""
    from aligntriage.worlds import get_scenario, scenario_names

    if name is not None:
        _scenario_detail(get_scenario(name), name)
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
            escape(sc.reward_description),
            "\n".join(t.name + (" (catastrophic)" if t.catastrophic else "") for t in sc.utility.values()),
            "\n".join(g.name + (" (intended)" if g.intended else "") for g in sc.goals.values()),
            "\n".join(f"{p.name}: {', '.join(p.reward_scope)}" for p in sc.partitions.values()),
            "\n".join(sc.affordances),
        )
    console.print(table)
    for scenario_name in scenario_names():
        console.print(f"[bold]{scenario_name}[/bold]: {escape(get_scenario(scenario_name).summary)}")
    console.print("Details: aligntriage scenarios NAME")


def _scenario_detail(sc, name: str) -> None:
    console.print(f"[bold]{sc.name}[/bold] — {escape(sc.summary)}\n")
    console.print(sc.doc.strip(), markup=False)
    parts = Table(show_header=True, title="parts")
    parts.add_column("part")
    parts.add_column("name")
    parts.add_column("description", overflow="fold")
    for dist in sc.distributions.values():
        parts.add_row("distribution", dist.name, escape(dist.description))
    parts.add_row("reward R", "reward", escape(sc.reward_description))
    for term in sc.utility.values():
        parts.add_row("U term", term.name + (" (catastrophic)" if term.catastrophic else ""), escape(term.description))
    for goal in sc.goals.values():
        parts.add_row("goal", goal.name + (" (intended)" if goal.intended else ""), escape(goal.description))
    for part in sc.partitions.values():
        parts.add_row("partition", part.name,
                      escape(f"reward covers {', '.join(part.reward_scope)} — {part.description}"))
    for aff in sc.affordances.values():
        parts.add_row("affordances", aff.name, escape(f"{', '.join(aff.actions)} — {aff.description}"))
    from aligntriage.worlds import param_specs

    specs = param_specs(name)
    for key, value in sc.params.items():
        spec = specs.get(key)
        detail = f"{spec.type.__name__} {spec.range_text(key)} — {spec.description}".replace("  ", " ") if spec else ""
        parts.add_row("level param", f"{key}={value}", escape(detail.strip(" —")))
    console.print(parts)


@app.command()
@user_errors
def show(
    scenario: str = typer.Argument(..., help="Scenario name or path to a scenario file."),
    dist: str = typer.Option("train", "--dist", help="Level distribution to sample from."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled level."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also draw the level to this PNG file."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Render a sampled level as text (and optionally PNG)."""
    import jax

    from aligntriage.worlds import get_scenario

    at_least(("--seed", seed, 0))
    sc = get_scenario(scenario, **parse_params(params))
    if png is not None:
        writable_file(png, "--png")
    level = jax.jit(sc.distribution(dist).sample)(jax.random.PRNGKey(seed))
    state = sc.world.reset(jax.random.PRNGKey(seed), level)
    console.print(f"[bold]{sc.name}[/bold]  dist={dist}  seed={seed}")
    for row in sc.world.render(state):
        console.print(row, markup=False, highlight=False)
    if png:
        from aligntriage.report.picture import save_state_png

        save_state_png(sc.world, state, png, title=f"{sc.name} · {dist} · seed {seed}")
        console.print(f"wrote {png}", markup=False, highlight=False)


def writable_file(path: Path, flag: str) -> None:
    """A one-line error now, not a traceback after the work, for an output file that cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise AligntriageError(f"{flag} '{path}' is a folder; give a file name")
    if not parent.is_dir():
        raise AligntriageError(f"{flag} '{path}': the folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise AligntriageError(f"{flag} '{path}' is not writable")


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
    """Training settings: PPOConfig defaults, then the scenario's own defaults, then what the user typed. A
    curriculum's settings need a curriculum other than dr, and the scenario must be able to run it."""
    from aligntriage.train.curate import check_curriculum

    typed = {k: v for k, v in options.items() if v is not None}
    if typed.get("curriculum", "dr") == "dr":
        for name in CURATOR_FIELDS:
            if name in typed:
                raise AligntriageError(f"--{name.replace('_', '-')} sets up a curriculum; add --curriculum "
                                       f"{'|'.join(c for c in CURRICULA if c != 'dr')}")
    config = PPOConfig.from_dict({**scenario.training, **typed})
    check_curriculum(scenario, config)
    return config


def _opt(name: str, help_text: str):
    return typer.Option(None, f"--{name}", help=f"{help_text} (default {getattr(PPOConfig, name.replace('-', '_'))})")


CurriculumOption = typer.Option(None, "--curriculum", help="How training picks its levels: "
                                + "; ".join(f"{name}: {text}" for name, text in CURRICULA.items())
                                + " (default dr). None of them sees U or the candidate goals.")
CurateFromOption = typer.Option(None, "--curate-from", help="The distribution a curriculum draws its new levels "
                                f"from (default {PPOConfig.curate_from}).")


def resumed_record(scenario: str, out: Path, given: dict):
    """The saved record of the run ``--resume`` continues, after refusing a scenario or settings that differ from
    it: a resumed run always trains with the settings it was started with."""
    from aligntriage.store.folder import RunFolder, scenario_ref

    record = RunFolder(out).record()
    if not record.training:
        raise AligntriageError(f"run folder '{out}' is a {record.kind} run; only training runs resume")
    if scenario_ref(scenario) != record.scenario:
        raise AligntriageError(f"--resume: '{out}' holds a run of '{record.scenario}', not '{scenario}'")
    saved = {"--dist": record.ppo.dist, "--steps": record.ppo.total_steps, "--seeds": record.ppo.seeds,
             "--seed": record.ppo.seed, "--envs": record.ppo.num_envs, "--width": record.ppo.width,
             "--depth": record.ppo.depth, "--network": record.ppo.network, "--ent-coef": record.ppo.ent_coef,
             "--gamma": record.ppo.gamma, "--lr": record.ppo.lr, "--curriculum": record.ppo.curriculum,
             "--curate-from": record.ppo.curate_from, "--score-every": record.ppo.score_every,
             "--replay-prob": record.ppo.replay_prob, "--buffer-size": record.ppo.buffer_size, "-p": record.params}
    for flag, value in given.items():
        if value is None or value == saved[flag] or (flag == "-p" and {**saved[flag], **value} == saved[flag]):
            continue
        if flag == "-p":
            typed = " ".join(f"-p {k}={v}" for k, v in value.items())
            have = ", ".join(f"{k}={v}" for k, v in saved[flag].items()) or "the defaults"
            raise AligntriageError(f"--resume continues the run with its saved settings; drop {typed} (the run's "
                                   f"level parameters are {have})")
        raise AligntriageError(f"--resume continues the run with its saved settings; drop {flag} {value} (the "
                               f"run's {flag} is {saved[flag]})")
    return record


@app.command()
@user_errors
def train(
    scenario: str = typer.Argument(..., help="Scenario name or path to a scenario file."),
    dist: Optional[str] = typer.Option(None, "--dist", help="Training distribution (default train)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Environment steps per seed (default "
                                        f"{PPOConfig.total_steps}, or the scenario's own budget)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds trained together in one vmapped call "
                                        "(default 1)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="First seed (default 0)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/SCENARIO-train-TIME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint, with its "
                                "saved settings."),
    envs: Optional[int] = typer.Option(None, "--envs", help=f"Parallel environments per seed (default "
                                       f"{PPOConfig.num_envs})."),
    width: Optional[int] = _opt("width", "Hidden units per layer."),
    depth: Optional[int] = _opt("depth", "Hidden layers."),
    network: Optional[str] = _opt("network", "mlp or cnn."),
    ent_coef: Optional[float] = typer.Option(None, "--ent-coef", help="Entropy bonus coefficient (default "
                                             f"{PPOConfig.ent_coef}, or the scenario's own)."),
    gamma: Optional[float] = _opt("gamma", "Discount."),
    lr: Optional[float] = _opt("lr", "Adam learning rate (annealed to 0)."),
    curriculum: Optional[str] = CurriculumOption,
    curate_from: Optional[str] = CurateFromOption,
    score_every: Optional[int] = _opt("score-every", "Updates between exact scoring passes (plr-exact, "
                                      "accel-exact)."),
    replay_prob: Optional[float] = _opt("replay-prob", "Chance that an update replays buffer levels (curricula)."),
    buffer_size: Optional[int] = _opt("buffer-size", "Levels the curator's buffer holds."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Train PPO on a scenario's training distribution (or a curriculum over a level space), with R only."""
    from aligntriage.worlds import get_scenario

    at_least(("--steps", steps, 1), ("--seeds", seeds, 1), ("--seed", seed, 0), ("--envs", envs, 1),
             ("--width", width, 1), ("--depth", depth, 1), ("--score-every", score_every, 1),
             ("--buffer-size", buffer_size, 1))
    level_params = parse_params(params)
    curation = {"curriculum": curriculum, "curate_from": curate_from, "score_every": score_every,
                "replay_prob": replay_prob, "buffer_size": buffer_size}
    if resume:
        if out is None:
            raise AligntriageError("--resume needs --out RUN_DIR")
        given = {"--dist": dist, "--steps": steps, "--seeds": seeds, "--seed": seed, "--envs": envs, "--width": width,
                 "--depth": depth, "--network": network, "--ent-coef": ent_coef, "--gamma": gamma, "--lr": lr,
                 **{f"--{k.replace('_', '-')}": v for k, v in curation.items()}, "-p": level_params or None}
        record = resumed_record(scenario, out, given)
        config, level_params, run_dir = record.ppo, record.params, out
        writable_index()
    else:
        sc = get_scenario(scenario, **level_params)
        require_jax_world(sc)
        sc.distribution(dist or "train")
        config = training_config(sc, dist=dist, total_steps=steps, seeds=seeds, seed=seed, num_envs=envs,
                                 width=width, depth=depth, network=network, ent_coef=ent_coef, gamma=gamma, lr=lr,
                                 **curation)
        run_dir = out or default_run_dir(scenario, "train")
        writable_index()
    from aligntriage.store.folder import RunFolder

    with RunFolder(run_dir).claim(new=not resume):  # before the progress bar: a refusal is the only line printed
        record = run_training(scenario, config, run_dir, level_params, resume)
    console.print(f"run {record.status}: {run_dir}", markup=False, highlight=False)
    if record.status == "interrupted":
        console.print(f"resume with: aligntriage train {scenario} --resume --out {run_dir}", markup=False,
                      highlight=False)
        raise typer.Exit(130)


@contextmanager
def training_progress():
    """A rich progress bar for training; yields the ``on_progress`` callback the training loop calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]train[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("train", total=None, info="compiling…")

        def on_progress(p: dict) -> None:
            info = (f"{p['steps_per_s']:,.0f} steps/s  return {p['mean_return']:.3f}  "
                    f"success {p['success_rate']:.0%}")
            progress.update(task, completed=p["steps"], total=p["total_steps"], info=info)

        yield on_progress


@contextmanager
def diagnosis_progress(dists: list[str]):
    """A rich progress bar over the distributions being diagnosed; yields the ``on_step`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]diagnose[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("diagnose", total=len(dists), info="")
        seen: list[str] = []

        def on_step(dist: str) -> None:
            if seen:
                progress.advance(task)
            seen.append(dist)
            progress.update(task, info=f"'{dist}': enumerating, solving exactly, inferring goals")

        yield on_step
        progress.update(task, completed=len(dists), info="resampling verdicts")


def run_training(scenario: str, config: PPOConfig, run_dir: Path, params: dict, resume: bool,
                 kind: str = "train"):
    """Train with a rich progress bar showing steps, steps/s, mean return and success rate."""
    from aligntriage.train.loop import train as train_loop

    with training_progress() as on_progress:
        return train_loop(scenario, config, run_dir, params=params, resume=resume, on_progress=on_progress,
                          kind=kind)


def tolerances_from(items: list[str] | None):
    """Verdict tolerances with ``KEY=VALUE`` overrides: known keys, finite numbers >= 0."""
    import dataclasses
    import math

    from aligntriage.diagnose import Tolerances
    from aligntriage.errors import UnknownName

    valid = [f.name for f in dataclasses.fields(Tolerances)]
    overrides = parse_params(items)
    for key, value in overrides.items():
        if key not in valid:
            raise UnknownName("tolerance", key, valid)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise AligntriageError(f"tolerance {key} must be a number >= 0, got '{value}'")
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
    """(scenario, policies, label, run folder or None) from a run folder or a scenario plus --policy NAME. A run
    that did not finish training is diagnosed with a warning, and its label says how far it got."""
    from aligntriage.solve.policies import scripted_names, split_noise
    from aligntriage.store.folder import RunFolder
    from aligntriage.train.loop import load_policy, read_training_run
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
    if params:
        raise AligntriageError(f"-p cannot change the level parameters of the trained run '{target}'; it was "
                               "trained with the ones in its run.json")
    record = read_training_run(run_dir)
    sc = get_scenario(record.scenario, **record.params)
    label = f"trained ({run_dir.name})"
    note = record.incomplete_note(live=RunFolder(run_dir).live() is not None)
    if note:
        errors.print(f"warning: run '{run_dir}' is {note}; its diagnosis is of a partly trained agent",
                     markup=False, highlight=False, soft_wrap=True)
        label = f"trained ({run_dir.name}, {note})"
    return sc, [load_policy(run_dir, s) for s in range(record.ppo.seeds)], label, run_dir


def _settings_for(run_dir: Optional[Path], levels: int):
    """Diagnosis settings: a trained run is judged over the episode it was trained for (its discount)."""
    from aligntriage.diagnose import Settings
    from aligntriage.pipeline import diagnosis_settings
    from aligntriage.store.folder import RunFolder

    return Settings() if run_dir is None else diagnosis_settings(RunFolder(run_dir).record().ppo, levels)


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
                                                  "explained, train_regret, catastrophe, confidence)."),
    resamples: int = typer.Option(200, "--resamples", help="Resamples of levels and seeds behind each verdict's "
                                  "probability (0: the point decision alone)."),
    counterfactual: bool = typer.Option(False, "--counterfactual", help="For a trained run: retrain its seeds with "
                                        "each failure's U terms in R and read the threat model causally (scripted "
                                        "policies always get the exact counterfactual)."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Diagnose a trained run or a scripted policy: verdict per partition with its probability, evidence,
    threat-model reading."""
    at_least(("--levels", levels, 2), ("--seed", seed, 0), ("--resamples", resamples, 0))
    from aligntriage.diagnose import diagnose
    from aligntriage.report.terminal import print_diagnosis
    from aligntriage.store import index_run
    from aligntriage.store.folder import RunFolder, RunRecord

    level_params = parse_params(params)
    tolerances = tolerances_from(tolerance)
    if json_out is not None:
        writable_file(json_out, "--json")
    sc, policies, label, run_dir = _policies_for(target, policy, level_params, arch)
    if run_dir is not None and out is not None:
        raise AligntriageError("--out is for a scripted policy's diagnosis; a trained run's diagnosis goes in its "
                               "own folder")
    scripted = run_dir is None
    if counterfactual and scripted:
        raise AligntriageError("--counterfactual retrains a trained run; a scripted policy's diagnosis already has the "
                               "exact counterfactual")
    writable_index()
    folder = RunFolder(out or default_run_dir(target, "diagnose") if scripted else run_dir)
    with folder.claim(new=scripted):
        with console.status("diagnosing: enumerating levels, solving exactly, resampling…"):
            result = diagnose(policies, sc, dist=dist, partitions=partition, affordances=affordances, levels=levels,
                              seed=seed, policy_label=label, tolerances=tolerances,
                              settings=_settings_for(run_dir, levels), resamples=resamples)
        if counterfactual:
            from aligntriage.pipeline import counterfactuals

            folder.write_json(RunFolder.diagnosis_name(dist), json.loads(result.to_json()))
            with training_progress() as on_progress:
                result = counterfactuals(run_dir, {dist: result}, levels, seed, on_progress)[dist]
        print_diagnosis(console, result)
        payload = json.loads(result.to_json())
        name = RunFolder.diagnosis_name(dist)
        if scripted:
            record = RunRecord.new("diagnose", target, level_params, policy=policy, dist=dist)
            folder.write_many({name: json_bytes(payload), RunFolder.RUN: json_bytes(record.to_dict())})
        else:
            folder.write_json(name, payload)
        run_id = index_run(folder.path)
    console.print(f"saved {folder.file(name)} (run {run_id})", markup=False, highlight=False)
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
    curriculum: Optional[str] = CurriculumOption,
    curate_from: Optional[str] = CurateFromOption,
    counterfactual: Optional[bool] = typer.Option(None, "--counterfactual/--no-counterfactual", help="Retrain with "
                                                  "each failure's U terms in R for a causal threat-model reading "
                                                  "(default: on for scenarios with harm or tampering terms)."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Train on the training distribution (or a curriculum), diagnose on every distribution and partition, save
    everything."""
    at_least(("--steps", steps, 1), ("--seeds", seeds, 1), ("--levels", levels, 2))
    from aligntriage.pipeline import diagnose_run
    from aligntriage.report.html import write_report
    from aligntriage.report.terminal import print_diagnosis, verdict_cell
    from aligntriage.store import index_run
    from aligntriage.store.folder import RunFolder
    from aligntriage.worlds import get_scenario

    level_params = parse_params(params)
    sc = get_scenario(scenario, **level_params)
    require_jax_world(sc)
    sc.distribution(dist)
    config = training_config(sc, dist=dist, total_steps=steps, seeds=seeds, curriculum=curriculum,
                             curate_from=curate_from)
    writable_index()
    folder = RunFolder(out or default_run_dir(scenario, "run"))
    run_dir = folder.path
    dists = [dist] + [d for d in sc.distributions if d != dist]
    with folder.claim(new=True):
        record = run_training(scenario, config, run_dir, level_params, resume=False, kind="run")
        if record.status != "complete":
            console.print(f"training interrupted; resume with: aligntriage train {scenario} --resume --out "
                          f"{run_dir}", markup=False, highlight=False)
            raise typer.Exit(130)
        with diagnosis_progress(dists) as on_step:
            results = diagnose_run(run_dir, dists, levels, on_step=on_step)
        if counterfactual if counterfactual is not None else bool(sc.harm_terms):
            from aligntriage.pipeline import counterfactuals

            with training_progress() as on_progress:
                results = counterfactuals(run_dir, results, levels, on_progress=on_progress)
        summary = Table(title=f"{sc.name}: verdicts of the agent trained on '{dist}'")
        summary.add_column("diagnosed on")
        for partition in sc.partitions:
            summary.add_column(f"partition '{partition}'")
        summary.add_column("inferred goal")
        for name, result in results.items():
            summary.add_row(name, *[verdict_cell(v) for v in result.verdicts],
                            result.verdicts[0].inferred_goal or "–")
        run_id = index_run(run_dir)
        print_diagnosis(console, results[dists[1]] if len(dists) > 1 else results[dist])
        console.print(summary)
        console.print(f"saved run {run_id} and its diagnoses in {run_dir}", markup=False, highlight=False)
        with console.status("writing the HTML report…"):
            report = write_report(run_dir)
        folder.adopt(RunFolder.REPORT)
    console.print(f"report: {report}", markup=False, highlight=False)


def main() -> None:
    app()


def _register_commands() -> None:
    """Import the command modules that live beside this one so their commands join ``app``."""
    import importlib

    for module in ("runs", "report", "sweep", "control", "mitigate"):
        try:
            importlib.import_module(f"aligntriage.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aligntriage.cli.{module}":
                raise


_register_commands()


if __name__ == "__main__":
    sys.exit(main())
