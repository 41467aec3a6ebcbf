"""A control run from names: build the scenario, the arena and the roles, evaluate, and save a run folder with
its record, the control table (curves and settings included) and the safety/usefulness figure."""

from __future__ import annotations

from pathlib import Path

from aligntriage.control.arena import build_arena
from aligntriage.control.evaluate import ControlSettings, evaluate_control
from aligntriage.control.figure import pareto_png
from aligntriage.control.protocols import protocols_for
from aligntriage.control.roles import affordance_sets, scripted_roles, trained_table
from aligntriage.errors import AligntriageError
from aligntriage.store.files import json_bytes
from aligntriage.store.folder import RunFolder, RunRecord, scenario_ref


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
        from aligntriage.train.loop import read_training_run

        record = read_training_run(Path(untrusted))
        if record.scenario != scenario_ref(scenario):
            raise AligntriageError(f"run folder '{untrusted}' trained scenario '{record.scenario}', not "
                                   f"'{scenario}'")
        if params and params != record.params:
            raise AligntriageError("--param cannot change the level parameters of a trained --untrusted run")
        params = dict(record.params)
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
    """Write the run folder atomically and register it in the run index (the caller holds the folder's claim)."""
    from aligntriage.store import index_run

    folder = RunFolder(run_dir)
    record = RunRecord.new("control", result["scenario"], result["params"], dist=result["settings"]["dist"],
                           control={"protocols": [row["protocol"] for row in result["protocols"]],
                                    "audit_budget": result["settings"]["audit_budget"],
                                    "episodes": result["settings"]["episodes"]})
    title = (f"{result['scenario']}: safety vs usefulness (audit budget {result['settings']['audit_budget']:g}, "
             f"{result['settings']['episodes']} episodes)")
    with folder.claim(new=True):
        folder.write_many({RunFolder.CONTROL: json_bytes(result), RunFolder.PARETO: pareto_png(result, title),
                           RunFolder.RUN: json_bytes(record.to_dict())})
        index_run(run_dir)
