"""Results on disk: flat JSON metrics, tidy CSV histories, and run records.

Every run folder holds ``history.csv`` (one row per round), ``metrics.json`` (the
final round, flat) and ``run.json`` (params, seed, package versions, git commit,
wall time per phase). No pickle: everything diffs cleanly in review.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import math
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

PACKAGES = ("medhe", "numpy", "torch", "transformers", "tenseal", "dp-accounting", "scikit-learn", "pandas")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None when missing)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with ``-dirty`` when the tree has changes), or None outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Python, platform, packages and git commit, for a run record."""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "packages": package_versions(), "git_commit": git_commit()}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _jsonable(obj.item())
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON (sorted keys, non-finite floats as strings/null) and return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")
    return p


def read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"results file {str(p)!r} not found; run the stage that writes it first")
    return json.loads(p.read_text())


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write dict rows to CSV; columns are the union of keys in first-seen order."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with p.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _jsonable(v) for k, v in row.items()})
    return p


def run_name(*, dataset: str, model: str, method: str, seed: int, **extra: Any) -> str:
    """A folder name that says what produced it, e.g. ``drugscom-minilm-medhe-s42``.

    >>> run_name(dataset="drugscom", model="minilm", method="medhe", seed=42, sparsity=0.9)
    'drugscom-minilm-medhe-sparsity0.9-s42'
    """
    parts = [dataset, model, method] + [f"{k}{v}" for k, v in extra.items()] + [f"s{seed}"]
    return "-".join(str(p).replace("/", "_") for p in parts)


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``params.yaml``.

    Notebooks call this so that they run the same from ``notebooks/`` (Jupyter) and
    from the repository root (papermill in the pipeline).
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no params.yaml in {here} or any parent: open the notebook inside the medhe checkout")
