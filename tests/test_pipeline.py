"""The DVC pipeline on the smoke profile, in a scratch copy of the repository.

In the default suite: the whole DAG resolves from the profile (every stage listed,
every stage feeding the ledger or the figures), and a short chain runs for real through `dvc repro`
(papermill notebooks included): the data, security stages and two training stages (plaintext and CKKS),
whose outputs are checked and fed through the comm / MIA tables of medhe.report; a second
`dvc repro` finds nothing to do. The stage-level tables are unit-tested on hand-written records in
tests/test_report.py and tests/test_security_table.py.

The whole pipeline end to end (every stage, the claims ledger; several minutes, most of them in the
paper-size and benchmark stages) runs with MEDHE_FULL_PIPELINE=1, or as `make repro PROFILE=smoke`.
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
import yaml

from medhe import claims, report
from medhe.attacks.data import PAPER_ATTACKS

ROOT = Path(__file__).resolve().parents[1]
SHORT_CHAIN = ("data", "security", "train@fedavg-42", "train@he_only-42")


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


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def _dvc(work: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(["dvc", *args], cwd=work, env=_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pipeline") / "repo"
    work.mkdir()
    _copy_tracked(work)
    shutil.copy2(work / "profiles" / "smoke.yaml", work / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return work


def _expected_stages(profile: dict) -> set[str]:
    pl = profile["pipeline"]
    return {"data", "bench", "security", "privacy", "mia", "comm", "stats", "figures", "claims",
            *(f"train@{m}-{s}" for m in pl["methods"] for s in pl["seeds"]),
            *(f"sweep@{m}-{s}" for m in pl["sweep_methods"] for s in pl["sweep_sparsity"]),
            *(f"convergence@{m}" for m in pl["convergence_methods"]),
            *(f"noniid@{m}" for m in pl["noniid_methods"]),
            *(f"scale@{m}-{c}" for m in pl["scale_methods"] for c in pl["client_counts"]),
            *(f"papersize@{m}" for m in pl["paper_size_methods"]),
            *(f"frontier@{m}-{s}-{b}" for m in pl["frontier_methods"] for s in pl["frontier_sparsity"]
              for b in pl["frontier_bits"]),
            *(f"lira@{m}" for m in pl["lira_methods"]),
            "ckks_topk", "report", "privacy_frontier", "flower_scale",
            *(f"privacy_utility@{p}-{s}" for p in pl["privacy_points"] for s in pl["privacy_seeds"]),
            *(f"target_ref@{s}" for s in pl["target_seeds"]),
            *(f"target@{v}-{s}" for v in pl["target_variants"] for s in pl["target_seeds"]),
            *(f"target_ablation@{v}" for v in pl["target_ablations"])}


def test_every_stage_resolves_and_feeds_the_ledger_or_the_figures(smoke_repo: Path) -> None:
    profile = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    names = set(_dvc(smoke_repo, "stage", "list", "--name-only").stdout.split())
    assert names == _expected_stages(profile)
    edges = [tuple(part.strip().strip('";') for part in line.split("->"))
             for line in _dvc(smoke_repo, "dag", "--dot").stdout.splitlines() if "->" in line]
    upstream: dict[str, set[str]] = {}
    for a, b in edges:
        upstream.setdefault(b, set()).add(a)

    def ancestors(node: str) -> set[str]:
        seen, todo = set(), [node]
        while todo:
            for parent in upstream.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    assert ancestors("report") | {"report"} == names  # no stage writes for nobody: the report reads them all
    assert {"claims", "figures"} <= ancestors("report")
    assert {"data", "bench", "security", "privacy", "mia", "comm", "stats"} <= ancestors("claims")


@pytest.mark.slow
def test_dvc_repro_short_chain_end_to_end(smoke_repo: Path) -> None:
    work = smoke_repo
    _dvc(work, "repro", *SHORT_CHAIN)
    base = work / "results" / "smoke"
    summary = json.loads((base / "data" / "summary.json").read_text())
    assert (summary["name"], summary["n_train"], summary["n_test"]) == ("breast_cancer", 455, 114)
    assert sum(summary["client_sizes"]) == 455 and len(summary["client_sizes"]) == 5
    config = json.loads((base / "config.json").read_text())
    assert config["profile"] == "smoke" and config["ckks"] == "N=8192 [60, 40, 40, 60] 2^40"
    security = pd.read_csv(base / "security" / "params.csv").set_index("label")
    assert not security.loc["paper (stated 128-bit)", "accepted"]  # the paper's set is refused, measured
    assert "218" in security.loc["paper (stated 128-bit)", "reason"]
    assert security.loc["pipeline default (closest secure to the paper)", "accepted"]
    fed = json.loads((base / "runs" / "fedavg_s42" / "metrics.json").read_text())
    num_params = json.loads((base / "runs" / "fedavg_s42" / "run.json").read_text())["num_params"]
    assert fed["bytes_up_per_client"] == 4 * num_params  # a dense float32 message, serialised and counted
    he = json.loads((base / "runs" / "he_only_s42" / "metrics.json").read_text())
    assert he["bytes_up_ciphertext"] > 4 * num_params  # CKKS costs more than plaintext
    for m in (fed, he):
        assert m["accuracy"] >= m["majority_accuracy"] + 0.15 and m["model_change_l2"] > 0
    # the comm and MIA stages' tables on real stage outputs
    comm = report.comm_tables("smoke", root=work / "results")
    by = comm["bytes"].set_index("method")
    assert by.loc["fedavg", "mib_up_per_client_round"] == pytest.approx(4 * num_params / 2**20)
    # the other groups did not run: absent, not invented; the target tables are empty, with their columns
    assert set(comm) == {"bytes", "to_target", "curves"} and comm["to_target"].empty and comm["curves"].empty
    mia = report.mia_tables("smoke", root=work / "results")
    assert set(mia["summary"]["method"]) == {"fedavg", "he_only"}
    assert set(mia["summary"]["worst_attack"]) <= set(PAPER_ATTACKS)
    # the lock: a second run finds every stage of the chain up to date
    again = _dvc(work, "repro", *SHORT_CHAIN)
    assert "Running stage" not in again.stdout, again.stdout[-2000:]
    assert all(f"'{stage}' didn't change" in again.stdout for stage in SHORT_CHAIN), again.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MEDHE_FULL_PIPELINE"), reason="the whole pipeline: set MEDHE_FULL_PIPELINE=1")
def test_dvc_repro_smoke_profile_end_to_end(tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    _copy_tracked(work)
    shutil.copy2(work / "profiles" / "smoke.yaml", work / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    run = subprocess.run(["dvc", "repro"], cwd=work, env=_env(), capture_output=True, text=True)
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
