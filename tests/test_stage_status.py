"""tools/stage_status.py: which stages of a profile ran on older code or parameters (dvc status against the
profile's own lock), so a ledger built on out-of-date runs says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import repo_scripts

ROOT = Path(__file__).resolve().parents[1]
stage_status = repo_scripts.load("tools/stage_status.py")


def test_the_committed_quick_results_are_what_the_current_code_computes() -> None:
    # the quick profile is rerun with every change that alters what a stage computes: its lock matches
    # the code, the parameters and the committed results
    stages, stale = stage_status.stage_status("quick")
    assert len(stages) > 20
    assert stale == {}, f"run: make repro (quick stages out of date: {stale})"


def test_a_changed_dependency_makes_exactly_its_stages_out_of_date(tmp_path: Path) -> None:
    for name in ("src", "notebooks", "claims", "benchmarks", "results/quick", "figures/quick", "profiles",
                 "locks/quick.lock", "dvc.yaml", ".dvcignore", ".dvc/config"):
        src, dst = ROOT / name, tmp_path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "_runs"))
        else:
            shutil.copy2(src, dst)
    with open(tmp_path / "claims" / "paper.yaml", "a") as f:
        f.write("\n# an edit\n")
    (tmp_path / "results" / "quick" / "claims.md").write_text("edited by hand\n")

    stages, stale = stage_status.stage_status("quick", root=tmp_path)

    # the three stages that read claims/paper.yaml, and the report, which reads the edited result
    assert sorted(stale) == ["bench", "claims", "figures", "report"]
    assert stale["report"] == ["dependencies: results/quick/claims.md"]
    assert stale["bench"] == ["dependencies: claims/paper.yaml"]
    assert stale["claims"] == ["dependencies: claims/paper.yaml",
                               "committed results differ from the run's: results/quick/claims.md modified"]
    assert stage_status.summary(stages, stale) == (
        f"4 of {len(stages)} stages ran on older code or parameters (bench, figures, claims, report)")


def test_reasons_and_summary_name_what_changed() -> None:
    entries = [{"changed deps": {"src/medhe/fl": "modified", "src/medhe/new.py": "new",
                                 "params.yaml": {"train": "modified", "clip": "new"}}},
               {"changed outs": {"notebooks/_runs/20_train_x.ipynb": "not in cache",
                                 "results/full/runs/x": "deleted"}},
               "changed command"]
    assert stage_status._reasons(entries) == [
        "dependencies: src/medhe/fl, src/medhe/new.py (new)", "parameters: train, clip (new)", "command",
        "committed results differ from the run's: results/full/runs/x deleted"]
    # a cached notebook missing from a fresh clone is not a change
    assert stage_status._reasons([{"changed outs": {"notebooks/_runs/a.ipynb": "deleted"}}]) == []
    stages = ["data", "train@a-1", "train@a-2", "target@a-1", "report"]
    assert stage_status.summary(stages, {}) == "every one of the 5 stages matches the current code and parameters"
    assert stage_status.summary(stages, {"train@a-1": ["command"], "target@a-1": ["never run"]}) == (
        "1 of 5 stages ran on older code or parameters (train 1/2); 1 never ran (target)")
