"""The whole DVC pipeline on the smoke profile, in a scratch copy of the repository.

Runs `dvc repro` end to end (papermill notebooks included) and checks that every stage wrote
what it promises and that the claims ledger has one row per claim with a valid verdict.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medhe import claims

ROOT = Path(__file__).resolve().parents[1]


def _copy_tracked(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("results/", "figures/", "notebooks/_runs/")) or rel == "dvc.lock":
            continue
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "notebooks" / "_runs").mkdir(parents=True, exist_ok=True)


@pytest.mark.slow
def test_dvc_repro_smoke_profile_end_to_end(tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    _copy_tracked(work)
    shutil.copy2(work / "profiles" / "smoke.yaml", work / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1"}
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    run = subprocess.run(["dvc", "repro"], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    base = work / "results" / "smoke"
    ledger = pd.read_csv(base / "claims.csv")
    assert len(ledger) == len(claims.load_claims(work / "claims" / "paper.yaml"))
    assert set(ledger["verdict"]) <= {claims.REPRODUCED, claims.NOT_REPRODUCED, claims.NOT_TESTABLE}
    by_id = ledger.set_index("id")
    assert by_id.loc["he-params", "verdict"] == claims.NOT_REPRODUCED  # the paper's set is refused, measured
    assert "MiB" in by_id.loc["comm-fedavg-mb", "measured"]
    for rel in ("comm/bytes.csv", "comm/sweep.csv", "comm/scale.csv", "stats/summary.csv", "stats/tests.csv",
                "security/params.csv", "privacy/epsilon.csv", "data/summary.json", "claims.md", "REPORT.md"):
        assert (base / rel).is_file(), rel
    assert len(list((work / "figures" / "smoke").glob("*.png"))) >= 6
    lira = pd.read_csv(base / "mia" / "lira_attacks.csv")
    assert "lira_offline" in set(lira["attack"]) and lira["auc"].between(0, 1).all()
    assert (work / "figures" / "smoke" / "lira_roc.png").is_file()
    trials = pd.read_csv(base / "stats" / "trials.csv")
    assert (trials["model_change_l2"] > 0).all()  # every trial moved its model
    metrics = json.loads((base / "stats" / "metrics.json").read_text())
    assert 0.5 < metrics["fedavg.accuracy.mean"] <= 1.0
    executed = json.loads((work / "notebooks" / "_runs" / "95_claims.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
    source = json.loads((work / "notebooks" / "95_claims.ipynb").read_text())
    assert not any(c.get("outputs") for c in source["cells"] if c["cell_type"] == "code")
