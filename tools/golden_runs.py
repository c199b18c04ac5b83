"""Golden runs of the federated loop: record what every transport path produces, to pin a refactor.

Runs :func:`medhe.fl.simulate.run` on the tabular test parameters (``tests/conftest.py::tabular_params``:
breast_cancer + MLP, 3 clients, 2 rounds) for a set of methods that covers every transport path
(plaintext own/union/dense, CKKS packed/unpacked x union/dense/global, BFV Gaussian/Skellam x
union/dense/global, the split head, adaptive clipping, record-level DP), and writes per run the history
(every column but the times), the byte ledger's rows and the final weights (float32, exact).

    PYTHONPATH=src python tools/golden_runs.py tests/golden/fl_runs.json

``tests/test_golden_runs.py`` reruns the same cases and compares: within float32 rounding for plaintext and BFV,
within CKKS's run-to-run error for CKKS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

TABULAR = {
    "data": {"dataset": "breast_cancer", "num_clients": 3},
    "model": {"name": "mlp", "hidden": 16},
    "train": {"rounds": 2, "local_epochs": 1, "batch_size": 16, "lr": 1e-2},
    "ckks": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40, 60]},
}

# case name -> (method, params overrides as dotted keys)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "fedavg": ("fedavg", {}),  # plaintext, dense payloads
    "topk": ("topk", {}),  # plaintext, own index sets
    "medhe_no_he": ("medhe_no_he", {}),  # plaintext, union, Gaussian DP
    "medhe_no_he_dense": ("medhe_no_he", {"sparsify.alignment": "dense"}),  # plaintext, sparse scattered dense
    "he_only": ("he_only", {}),  # CKKS unpacked, dense payloads
    "he_classifier_only": ("he_classifier_only", {}),  # CKKS head + plaintext rest
    "medhe": ("medhe", {}),  # CKKS packed, union, DP
    "medhe_dense": ("medhe", {"sparsify.alignment": "dense"}),  # CKKS packed, dense alignment
    "medhe_no_packing": ("medhe_no_packing", {}),  # CKKS unpacked, union, DP
    "medhe_no_packing_dense": ("medhe_no_packing", {"sparsify.alignment": "dense"}),  # CKKS unpacked, dense
    "medhe_no_dp": ("medhe_no_dp", {}),  # CKKS packed, union, adaptive clipping
    "medhe_global": ("medhe_global", {}),  # CKKS packed, global mask, DP
    "medhe_global_no_dp": ("medhe_global_no_dp", {}),  # CKKS packed, global mask, adaptive clip
    "medhe_bfv": ("medhe_bfv", {}),  # BFV, union, Gaussian DP
    "medhe_bfv_dense": ("medhe_bfv", {"sparsify.alignment": "dense"}),  # BFV, dense alignment
    "medhe_bfv_no_dp": ("medhe_bfv_no_dp", {}),  # BFV, union, adaptive clipping
    "medhe_bfv_skellam": ("medhe_bfv_skellam", {}),  # BFV, Skellam shares
    "medhe_bfv_global_no_dp": ("medhe_bfv_global_no_dp", {}),  # BFV, global mask
    "fedavg_dpsgd": ("fedavg_dpsgd", {}),  # plaintext, record-level DP-SGD
}


def encryption(method: str) -> str:
    from medhe.fl import methods

    return methods.get(method).encryption


def params_for(overrides: dict[str, Any]):
    from medhe import params

    raw = json.loads(json.dumps(TABULAR))
    for key, value in overrides.items():
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    return params.load_dict(raw)


def _clean(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else repr(v)  # JSON has no nan/inf
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


def run_case(name: str) -> dict[str, Any]:
    """One golden case: history without times, ledger rows, final weights and their sha256."""
    from medhe.fl import simulate

    method, overrides = CASES[name]
    res = simulate.run(params_for(overrides), method=method, progress=False)
    history = [{k: _clean(v) for k, v in row.items() if not k.startswith("time_")} for row in res.history]
    w = np.asarray(res.final_weights, dtype=np.float32)
    return {"method": method, "overrides": overrides, "encryption": encryption(method), "history": history,
            "ledger": [dict(r) for r in res.ledger.rows], "final_weights": w.tolist(),
            "final_weights_sha256": hashlib.sha256(w.tobytes()).hexdigest()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--case", action="append", help="only these cases (default: all)")
    args = ap.parse_args(argv)
    out = {name: run_case(name) for name in (args.case or CASES)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=None, sort_keys=True) + "\n")
    print(f"wrote {len(out)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
