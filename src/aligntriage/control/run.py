"""A control run from names: build the scenario, the arena and the roles, evaluate, and save a run folder with
``run.json``, ``control.json`` (the table, curves and settings) and ``control-pareto.png``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aligntriage.control.arena import build_arena
from aligntriage.control.evaluate import ControlSettings, evaluate_control
from aligntriage.control.figure import save_pareto
from aligntriage.control.protocols import protocols_for
from aligntriage.control.roles import affordance_sets, scripted_roles, trained_table
from aligntriage.errors import AligntriageError
from aligntriage.store.files import write_json

CONTROL_FILE = "control.json"
PARETO_FILE = "control-pareto.png"


def control(scenario: str, settings: ControlSettings, protocols: list[str] | None = None,
            params: dict | None = None, untrusted: Path | None = None, trusted_affordances: str | None = None,
            untrusted_affordances: str | None = None) -> dict:
    """Evaluate the protocols on a scenario (scripted roles, or a trained run as the untrusted benign policy)."""
    from aligntriage.worlds import get_scenario

    settings.validate()
    chosen = protocols_for(protocols, settings.audit_budget, settings.defer_fraction, settings.edit_fraction)
    params = dict(params or {})
    benign_label = "U-optimal"
    if untrusted is not None:
        from aligntriage.train.loop import read_run

        record = read_run(Path(untrusted))
        if record.get("scenario") != scenario:
            raise AligntriageError(f"run folder '{untrusted}' trained scenario '{record.get('scenario')}', not "
                                   f"'{scenario}'")
        if params and params != record.get("params", {}):
            raise AligntriageError("--param cannot change the level parameters of a trained --untrusted run")
        params = dict(record.get("params", {}))
        benign_label = f"trained run {Path(untrusted).name} (seed 0)"
    sc = get_scenario(scenario, **params)
    trusted_aff, untrusted_aff = affordance_sets(sc, trusted_affordances, untrusted_affordances)
    arena, batch = build_arena(sc, settings.dist, settings.levels, settings.seed)
    benign = trained_table(sc, batch, Path(untrusted)) if untrusted is not None else None
    roles = scripted_roles(sc, batch, trusted_aff, untrusted_aff, settings.trusted_temperature, settings.gamma,
                           benign=benign)
    result = evaluate_control(arena, roles, chosen, settings)
    result.update({
        "scenario": sc.name,
        "params": dict(sc.params),
        "roles": {
            "untrusted": f"{benign_label} within affordances '{untrusted_aff}'",
            "attack": f"R-optimal within affordances '{untrusted_aff}', played in an episode with probability "
                      "equal to the attack rate",
            "trusted": f"soft-optimal for U (temperature {settings.trusted_temperature:g}) within affordances "
                       f"'{trusted_aff}'",
            "monitor": "the trusted policy's surprise -log pi_T(a|s) at the untrusted action",
            "audit": "the U oracle: a catastrophic action it inspects is caught and the deployment shut down",
            "trusted_affordances": trusted_aff,
            "untrusted_affordances": untrusted_aff,
            "untrusted_run": str(untrusted) if untrusted is not None else None,
        },
    })
    return result


def save_control_run(run_dir: Path, result: dict) -> None:
    """Write the run folder atomically and register it in the run index."""
    from aligntriage.store import index_run

    run_dir = Path(run_dir)
    if (run_dir / "run.json").exists():
        raise AligntriageError(f"run folder '{run_dir}' already holds a run; choose another --out")
    record = {
        "kind": "control",
        "scenario": result["scenario"],
        "params": result["params"],
        "dist": result["settings"]["dist"],
        "status": "complete",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "control": {"protocols": [row["protocol"] for row in result["protocols"]],
                    "audit_budget": result["settings"]["audit_budget"],
                    "episodes": result["settings"]["episodes"]},
    }
    write_json(run_dir / CONTROL_FILE, result)
    save_pareto(result, run_dir / PARETO_FILE,
                f"{result['scenario']}: safety vs usefulness (audit budget {result['settings']['audit_budget']:g}, "
                f"{result['settings']['episodes']} episodes)")
    write_json(run_dir / "run.json", record)
    index_run(run_dir)
