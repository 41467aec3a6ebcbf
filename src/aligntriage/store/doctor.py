"""``aligntriage doctor``: check the run index and every indexed run folder, and repair what can be repaired.

The run folder is the truth and the index a summary of it, so an index entry that disagrees with its folder is
refreshed from the folder, and one whose folder is gone is dropped. Inside a folder, the manifest tells damage (a
file aligntriage wrote is missing or changed) from the leftovers of a command killed mid-write (a temporary file, a
write recorded as started but not as finished), which are harmless and tidied by ``--repair``.
"""

from __future__ import annotations

from aligntriage.errors import AligntriageError
from aligntriage.store.folder import Finding, RunFolder
from aligntriage.store.index import RunIndex, summarise_run

COMPARED = ("kind", "scenario", "dist", "seeds", "steps", "status", "verdicts")


def check_store(store=None) -> list[Finding]:
    """Every finding in the index and its run folders, damage first."""
    try:
        index = RunIndex(store)
        integrity = index.integrity()
        rows = index.runs()
        sweeps = index.sweeps()
    except AligntriageError as exc:
        return [Finding("index", str(exc), "move the index aside and re-register runs with 'aligntriage runs --scan "
                        "DIR'")]
    findings = []
    if integrity != "ok":
        findings.append(Finding(str(index.path), f"SQLite integrity check: {integrity}",
                                "move the index aside and re-register runs with 'aligntriage runs --scan DIR'"))
    for row in rows:
        where = f"run {row['id']} ({row['path']})"
        folder = RunFolder(row["path"])
        if not folder.path.is_dir():
            findings.append(Finding(where, "its folder is gone", "drop the index entry", "damage",
                                    lambda r=row: index.remove(r["id"])))
            continue
        found = folder.check()
        findings.extend(found)
        if folder.live() is not None or any(f.where == str(folder.path) and "run file" in f.problem for f in found):
            continue  # a run still writing its files, or one whose record does not validate
        try:
            summary = summarise_run(folder.path)
        except AligntriageError as exc:
            findings.append(Finding(where, str(exc), "none possible: restore its run.json"))
            continue
        stored = dict(row, status=_stored_status(row, summary))
        differs = [k for k in COMPARED if _norm(stored.get(k)) != _norm(summary.get(k))]
        if differs:
            findings.append(Finding(where, f"index entry out of date ({', '.join(differs)})",
                                    "refresh it from the run folder", "leftover",
                                    lambda s=summary, r=row: index.upsert({**s, "sweep_id": r["sweep_id"]
                                                                           or s.get("sweep_id")})))
    for sweep in sweeps:
        if not RunFolder(sweep["path"]).path.is_dir():
            findings.append(Finding(f"sweep {sweep['id']} ({sweep['path']})", "its folder is gone",
                                    "none needed: the sweep's entry only groups its runs", "leftover"))
    unique = list({(f.where, f.problem): f for f in findings}.values())  # a sweep's points are checked twice
    return sorted(unique, key=lambda f: f.severity != "damage")


def _stored_status(row: dict, summary: dict) -> str:
    """The index shows a killed run as 'incomplete' while its run.json still says 'running': that agrees."""
    return "running" if row["status"] == "incomplete" and summary["status"] == "running" else row["status"]


def _norm(value):
    return str(value) if value is not None else None


def repair_findings(findings: list[Finding], accept_edits: bool = False) -> tuple[int, list[Finding]]:
    """Apply each finding's repair; returns (how many were repaired, the findings left for the user)."""
    repaired, left = 0, []
    for finding in findings:
        fix = finding.fix or (finding.accept if accept_edits else None)
        if fix is None:
            if finding.severity == "damage" or finding.repair.startswith("none possible"):
                left.append(finding)
            continue
        try:
            fix()
            repaired += 1
        except (AligntriageError, OSError):
            left.append(finding)
    return repaired, left
