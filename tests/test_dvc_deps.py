"""dvc.yaml's training stages depend on every medhe module a training run imports, so that changing
any of them reruns training (and nothing it does not import, so that a report change does not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# a run of every transport and of the membership-inference attacks (LiRA shadows included), in a fresh
# interpreter so that only what a training stage imports is in sys.modules
SCRIPT = """
import json, sys
from medhe import attacks, fl, params, records, results
P = params.load_dict({"data": {"dataset": "breast_cancer", "num_clients": 3}, "model": {"name": "mlp", "hidden": 8},
                      "train": {"rounds": 1, "local_epochs": 1, "batch_size": 32, "lr": 1e-2},
                      "dp": {"noise_multiplier": 1.0},
                      "ckks": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40, 60]}})
for method in ("medhe", "medhe_bfv", "topk", "he_only", "medhe_no_he"):
    fl.run(P, method=method, seed=0, progress=False)
attacks.evaluate_run(P, method="fedavg", seed=0, config=attacks.MIAConfig(n_shadows=2, n_bootstrap=10))
print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items())
                        if (n == "medhe" or n.startswith("medhe.")) and getattr(m, "__file__", None))))
"""

# imported by the notebook only to name output folders, which dvc.yaml fixes itself (see its comment)
NOT_A_TRAINING_DEP = {"src/medhe/results.py"}


def test_training_stages_depend_on_every_module_a_run_imports() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    imported = {Path(f).resolve().relative_to(ROOT).as_posix() for f in json.loads(run.stdout.splitlines()[-1])}
    assert "src/medhe/fl/ckks_transport.py" in imported and "src/medhe/attacks/lira.py" in imported
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "sweep", "convergence", "noniid", "scale", "papersize", "frontier", "lira"):
        deps = [d for d in stages[name]["deps"] if d.startswith("src/")]
        covered = {f for f in imported if any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)}
        assert imported - covered - NOT_A_TRAINING_DEP == set(), name
        assert not any(d in ("src/medhe/report.py", "src/medhe/claims.py", "src/medhe/plots.py") for d in deps), name
