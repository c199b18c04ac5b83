"""Committed results: every run folder under results/<profile>/ is an output of that profile's lock.

A matrix entry dropped from a profile leaves its old folder behind (DVC does not delete the outputs of
stages that no longer exist), and the comm, report and train-time tables read every folder of a group:
the old runs would be counted as if the profile had made them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (ROOT / "locks").glob("*.lock"))


def stale_run_folders(profile: str, root: Path = ROOT) -> list[str]:
    """Folders ``results/<profile>/<group>/<run>`` that no stage of ``locks/<profile>.lock`` writes."""
    lock = yaml.safe_load((root / "locks" / f"{profile}.lock").read_text())
    outs = {o["path"] for stage in lock.get("stages", {}).values() for o in stage.get("outs", [])}
    stale = []
    for folder in sorted((root / "results" / profile).glob("*/*/")):
        if not folder.is_dir():
            continue
        rel = folder.relative_to(root).as_posix()
        if not any(o == rel or o.startswith(rel + "/") or rel.startswith(o + "/") for o in outs):
            stale.append(rel)
    return stale


@pytest.mark.parametrize("profile", PROFILES)
def test_every_committed_run_folder_is_an_output_of_the_profiles_lock(profile):
    assert stale_run_folders(profile) == [], "remove these folders (git rm -r): no stage of the profile writes them"


def test_a_folder_left_by_a_dropped_stage_is_found(tmp_path):
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "p.lock").write_text(yaml.safe_dump({"stages": {"train@a": {"outs": [
        {"path": "results/p/runs/a_s1/run.json"}]}, "bench": {"outs": [{"path": "results/p/bench"}]}}}))
    for rel in ("runs/a_s1", "runs/b_s1", "bench/x"):
        (tmp_path / "results" / "p" / rel).mkdir(parents=True)
    assert stale_run_folders("p", root=tmp_path) == ["results/p/runs/b_s1"]
