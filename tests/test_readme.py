"""The README: short, its measured numbers only in generated blocks that match the results files, and a
tree free of machine paths."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import repo_scripts

ROOT = Path(__file__).resolve().parents[1]
readme_tables = repo_scripts.load("tools/readme_tables.py")


def test_readme_blocks_are_what_the_results_files_give() -> None:
    text = (ROOT / "README.md").read_text()
    assert readme_tables.BLOCK.search(text), "the README has no generated block"
    assert readme_tables.regenerate(text, root=ROOT) == text, "run: python tools/readme_tables.py"


def test_readme_is_at_most_12_kib() -> None:
    assert (ROOT / "README.md").stat().st_size <= 12_288


def test_times_block_reads_the_records_and_says_when_there_is_none(tmp_path: Path) -> None:
    assert readme_tables.times("quick", tmp_path) == ("- `make repro` (profile `quick`): not yet measured\n"
                                                     "- `make test`: not yet measured")
    (tmp_path / "results" / "quick").mkdir(parents=True)
    (tmp_path / "results" / "quick" / "repro_time.json").write_text(json.dumps(
        {"pipeline_s": 843.0, "cpus": 2, "stages_run": 40, "stages_total": 41}))
    (tmp_path / "results" / "test_time.json").write_text(json.dumps({"seconds": 270.0, "cpus": 2}))
    assert readme_tables.times("quick", tmp_path) == (
        "- `make repro` (profile `quick`): pipeline 14.1 min on 2 cores, 40 of 41 stages run (set-up extra)\n"
        "- `make test`: 4.5 min on 2 cores")


def test_times_block_gives_the_flower_tests_share(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "test_time.json").write_text(json.dumps({"seconds": 540, "flower_s": 240, "cpus": 2}))
    assert readme_tables.times("quick", tmp_path).endswith(
        "- `make test`: 9.0 min on 2 cores, of which the Flower engine's tests 4.0 min (`make test-core` leaves them out)")


def test_to_target_block_shows_the_main_variants_and_counts_the_rest(tmp_path: Path) -> None:
    rows = [{"variant": v, "method": v.split("-")[0], "seed": 42, "reached": True, "rounds_run": 8, "rounds_to_target": 3,
             "mib_up_to_target": 12.0, "f1_macro_r3": 0.6, "epsilon": float("nan"), "reference_learned": True}
            for v in ("fedavg", "topk", "topk-s0.99", "medhe_no_dp_no_ef")]
    (tmp_path / "results" / "full" / "comm").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "results" / "full" / "comm" / "to_target.csv", index=False)
    block = readme_tables.to_target("full", tmp_path)
    shown = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("| ")][1:]
    assert shown == ["fedavg", "topk"]
    assert block.endswith("2 more variants (sparsity, bit width, ablations) in "
                          "[`results/full/REPORT.md`](results/full/REPORT.md).")


def test_regenerate_rebuilds_every_block_and_refuses_an_unknown_kind(tmp_path: Path) -> None:
    stale = ("a\n<!-- to-target:full:begin -->\nold numbers\n<!-- to-target:full:end -->\nb\n"
             "<!-- train-time:full:begin -->\n- 99 h\n<!-- train-time:full:end -->\n")
    new = readme_tables.regenerate(stale, root=tmp_path)
    assert "old numbers" not in new and "99 h" not in new
    assert new.count("not yet measured") == 2 and new.startswith("a\n") and "\nb\n" in new
    with pytest.raises(ValueError, match="unknown README block kind 'nope'"):
        readme_tables.regenerate("<!-- nope:full:begin -->\n<!-- nope:full:end -->", root=tmp_path)


def test_ledger_block_counts_verdicts_from_the_csv(tmp_path: Path) -> None:
    (tmp_path / "results" / "p").mkdir(parents=True)
    (tmp_path / "results" / "p" / "claims.csv").write_text(
        "id,claim,verdict,configuration\na,claim a,reproduced,cfg\nb,claim b,not reproduced,cfg\n"
        "c,claim c,not reproduced,cfg\n")
    block = readme_tables.ledger("p", tmp_path)
    assert block.splitlines()[0] == "cfg. Verdicts: not reproduced: 2, reproduced: 1"
    assert "| b | claim b | **not reproduced** |" in block


def test_no_tracked_file_names_a_machine_path() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile("(/" + "work/|/" + "home/[a-z]|/" + "Users/[A-Z])")  # split: this file is tracked too
    offenders = []
    for rel in files:
        path = ROOT / rel
        if not path.is_file() or path.suffix in {".png", ".zip"} or path.stat().st_size > 2_000_000:
            continue
        if pattern.search(path.read_text(errors="ignore")):
            offenders.append(rel)
    assert offenders == []


def test_readme_python_example_runs(capsys) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    exec(compile(code, "README.md", "exec"), {})
    densities, total = capsys.readouterr().out.rsplit("]", 1)
    assert densities.startswith("[0.1,") and int(total) > 0  # round 1 keeps exactly the top 10 %
