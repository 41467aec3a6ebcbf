"""Time to write the HTML report of a coinrun run (issue 21: about 5 s warm on a 2-core CPU).

Cold is a fresh process (imports and XLA compiles included), warm the next report in the same process, with the
warm report's phases. The peer, measured in the same run, is what the report used to do to find its levels:
re-sample each shown distribution op by op (an un-jitted ``vmap`` of the sampler over all the diagnosis's keys, as
``diagnose`` draws them), against the report's one jitted call on the few keys it needs; both cold, each in a
fresh process. Needs a run folder: ``--run DIR`` (e.g. one ``aligntriage run coinrun`` wrote), or ``--make DIR``
to train a short coinrun run and diagnose it on every distribution first (minutes).
Rerun: ``python benchmarks/report_speed.py --run runs/coinrun-run-...``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

COLD = """
import json, sys, time
start = time.monotonic()
from aligntriage.report.html import write_report
write_report(sys.argv[1])
cold = time.monotonic() - start
start = time.monotonic()
write_report(sys.argv[1])
print(json.dumps({"cold": cold, "warm": time.monotonic() - start}))
"""

DRAW = """
import json, sys, time
import jax
from aligntriage.report.folder import RunFolder
from aligntriage.report import levels
from aligntriage.worlds.vector import sample_levels
run = RunFolder(sys.argv[1]); d = run.focus(); picks = levels.choose(d)
start = time.monotonic()
if sys.argv[2] == "jitted":
    jax.block_until_ready(levels.diagnosed_levels(run.scenario, d, picks))
else:
    for dist in dict.fromkeys(p.dist for p in picks):
        key = jax.random.fold_in(jax.random.PRNGKey(d.seed), sum(map(ord, dist)))
        jax.block_until_ready(sample_levels(run.scenario, dist, jax.random.split(key)[0], d.levels))
print(json.dumps({"draw": time.monotonic() - start}))
"""


def fresh(script: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def phases(run_dir: Path) -> dict[str, float]:
    """The warm report's parts, each timed alone after one full report."""
    from aligntriage.report import evidence_view, figures, level_sections, levels, sections
    from aligntriage.report.folder import RunFolder
    from aligntriage.report.html import build_report

    build_report(run_dir)
    times = {}

    def timed(name, fn):
        start = time.monotonic()
        result = fn()
        times[name] = time.monotonic() - start
        return result

    run = timed("read the run folder (typed diagnoses)", lambda: RunFolder(run_dir))
    d = run.focus()
    timed("summary and verdict tables", lambda: sections.summary(run, d) + sections.verdict_table(run))
    timed("evidence tables", lambda: evidence_view.evidence_table(d) + evidence_view.inference_table(d))
    timed("evidence figures (matplotlib)", lambda: (
        figures.outcome_bars(*evidence_view.outcome_series(d), d.intended),
        figures.inference_bars(*evidence_view.inference_panels(d), d.intended),
        figures.values_by_term(*evidence_view.value_panels(d)), figures.training_curves(run.metrics)))
    views = timed("draw levels (sample, enumerate, policies)", lambda: levels.draw(run.scenario, run.dir, d))
    timed("heatmaps and vector fields", lambda: level_sections.where_it_goes(run.scenario, d, views))
    timed("episodes (walk, strips, GIFs)", lambda: level_sections.rendered_episodes(run.scenario, views))
    return times


def make_run(out: Path, steps: int) -> None:
    from aligntriage.cli.main import _settings_for, training_config
    from aligntriage.diagnose import diagnose_many
    from aligntriage.store.files import write_json
    from aligntriage.train.loop import load_policy, train
    from aligntriage.worlds import get_scenario

    scenario = get_scenario("coinrun")
    train("coinrun", training_config(scenario, dist="train", total_steps=steps, seeds=1), out, kind="run",
          index=False)
    dists = ["train"] + [d for d in scenario.distributions if d != "train"]
    results = diagnose_many([load_policy(out, 0)], scenario, dists, levels=200, policy_label="trained on train",
                            settings=_settings_for(out))
    for name, result in results.items():
        write_json(out / f"diagnosis-{name}.json", json.loads(result.to_json()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing run folder")
    parser.add_argument("--make", type=Path, help="train and diagnose a coinrun run here first")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.make:
        make_run(args.make, args.steps)
    run_dir = args.make or args.run
    if run_dir is None:
        parser.error("give --run DIR or --make DIR")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for k in range(args.repeats):
        report = fresh(COLD, str(run_dir))
        jitted, eager = fresh(DRAW, str(run_dir), "jitted"), fresh(DRAW, str(run_dir), "eager")
        print(f"round {k}: report cold {report['cold']:.1f} s, warm {report['warm']:.1f} s; levels drawn cold: one "
              f"jitted call {jitted['draw']:.1f} s, op by op {eager['draw']:.1f} s "
              f"({eager['draw'] / jitted['draw']:.1f}x)")
    for name, seconds in phases(run_dir).items():
        print(f"  warm phase: {name}: {seconds:.2f} s")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
