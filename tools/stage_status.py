"""Which stages of a profile ran on code, parameters or commands that have changed since: ``dvc status``
against the profile's own lock (``locks/<profile>.lock``).

A profile's results are committed stage by stage, and a long profile is not rerun for every code change,
so the results in ``results/<profile>/`` can predate the code beside them. This says which, so that a
reader of a profile's ledger knows which rows rest on out-of-date runs. It runs ``dvc status`` in a
scratch copy (the profile's parameters as ``params.yaml``, its lock as ``dvc.lock``, and the files the
stages name), so the working tree's ``params.yaml`` and ``dvc.lock`` are left alone and a running
pipeline is not disturbed.

A stage is out of date when a dependency, a parameter or its command differs from what its lock entry
recorded, when a committed result differs from the output the lock recorded, or when it never ran.
Executed notebooks are DVC-cached and not in git, so their absence in a fresh clone is not counted.

    python tools/stage_status.py full     # one line per out-of-date stage: what changed
    make status PROFILE=full
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# what a stage can name: its code and notebooks, the claims, and the profile's own results and figures
COPIED = ("src", "notebooks", "claims", "benchmarks", "dvc.yaml", ".dvcignore", ".dvc/config")
PER_PROFILE = ("results", "figures")
CACHED_OUTS = "notebooks/_runs/"  # DVC-cached executed notebooks: not in git
NEVER_RUN = "never run"


def _dvc(args: list[str], cwd: Path) -> str:
    dvc = shutil.which("dvc", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if dvc is None:
        raise RuntimeError("dvc is not installed: run make setup, or use .venv/bin/python")
    done = subprocess.run([dvc, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _scratch_copy(profile: str, root: Path, into: Path) -> None:
    params, lock = root / "profiles" / f"{profile}.yaml", root / "locks" / f"{profile}.lock"
    if not params.is_file():
        raise FileNotFoundError(f"no profile {profile!r}: {params} is missing; choose one of "
                                f"{sorted(p.stem for p in (root / 'profiles').glob('*.yaml'))}")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "_runs")
    for name in COPIED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, into / name, ignore=skip)
        elif src.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, into / name)
    for name in PER_PROFILE:
        if (root / name / profile).is_dir():
            shutil.copytree(root / name / profile, into / name / profile, ignore=skip)
    shutil.copy2(params, into / "params.yaml")
    if lock.is_file():
        shutil.copy2(lock, into / "dvc.lock")
    subprocess.run(["git", "init", "-q"], cwd=into, check=True)


def _reasons(entries: list) -> list[str]:
    """What ``dvc status --json`` says changed for one stage, without the cached notebooks' absence:
    ``["code: a, b", "parameters: x", "command", "result: r modified"]``."""
    code, params, results, other = [], [], [], []
    for entry in entries:
        if isinstance(entry, str):
            other.append(entry.removeprefix("changed "))  # "command", "always changed"
            continue
        for kind, changes in entry.items():
            for path, state in changes.items():
                if kind == "changed outs":
                    if not path.startswith(CACHED_OUTS):
                        results.append(f"{path} {state}")
                elif isinstance(state, dict):  # params.yaml: one state per parameter
                    params += [name if s == "modified" else f"{name} ({s})" for name, s in state.items()]
                else:
                    code.append(path if state == "modified" else f"{path} ({state})")
    return ([f"dependencies: {', '.join(code)}"] if code else []) + \
           ([f"parameters: {', '.join(params)}"] if params else []) + other + \
           ([f"committed results differ from the run's: {', '.join(results)}"] if results else [])


def stage_status(profile: str, *, root: Path = ROOT) -> tuple[list[str], dict[str, list[str]]]:
    """Every stage of the profile's pipeline, and for each out-of-date one what changed."""
    with tempfile.TemporaryDirectory(prefix="medhe-status-") as tmp:
        scratch = Path(tmp)
        _scratch_copy(profile, root, scratch)
        stages = _dvc(["stage", "list", "--name-only"], scratch).split()
        status = json.loads(_dvc(["status", "--json"], scratch) or "{}")
        lock_file = scratch / "dvc.lock"
        recorded = yaml.safe_load(lock_file.read_text())["stages"] if lock_file.is_file() else {}
    stale = {}
    for stage in stages:
        if stage not in recorded:
            stale[stage] = [NEVER_RUN]
        elif reasons := _reasons(status.get(stage, [])):
            stale[stage] = reasons
    return stages, stale


def summary(stages: list[str], stale: dict[str, list[str]]) -> str:
    """One line: how many stages ran on older code or parameters, and how many never ran, per stage
    family (the name before ``@``; a family of one stage by its name alone)."""
    if not stale:
        return f"every one of the {len(stages)} stages matches the current code and parameters"
    total = Counter(s.split("@")[0] for s in stages)

    def families(names: list[str]) -> str:
        count = Counter(s.split("@")[0] for s in names)
        return ", ".join(f if total[f] == 1 else f"{f} {count[f]}/{total[f]}" for f in total if count[f])

    never = [s for s, r in stale.items() if r == [NEVER_RUN]]
    older = [s for s in stale if s not in never]
    parts = []
    if older:
        parts.append(f"{len(older)} of {len(stages)} stages ran on older code or parameters ({families(older)})")
    if never:
        parts.append(f"{len(never)} never ran ({families(never)})")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", help="a profile of profiles/, e.g. quick or full")
    args = ap.parse_args(argv)
    stages, stale = stage_status(args.profile)
    print(f"profile {args.profile}: {summary(stages, stale)}")
    for stage, reasons in stale.items():
        print(f"{stage}: {'; '.join(reasons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
