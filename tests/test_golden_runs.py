"""The federated loop gives the results recorded before the protocol was split into roles.

``tests/golden/fl_runs.json`` was written by ``tools/golden_runs.py`` with the code before the split
(one function per transport ran both sides). Every case reruns here. Every message of the byte ledger
must be the same, byte for byte, except ciphertexts, which SEAL compresses differently on each draw.
Plaintext and BFV must match within float32 rounding (history and final weights); CKKS within its
run-to-run error (SEAL's encryption noise).

Not bit for bit: torch and OpenBLAS choose their float32 kernels by CPU (AVX2, AVX-512, none), so the
same seed gives the same run on one host but differs in the last bits between hosts. Measured on the
plaintext and BFV cases, ``ATEN_CPU_CAPABILITY=default`` against AVX2: metrics within 2.7e-7 relative
(values near 0, such as a clipped fraction of 1e-9, within 1e-8 absolute), final weights within
2.7e-7 of the last round's model change. The tolerances below leave a margin of about 40.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import repo_scripts

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "fl_runs.json").read_text())
golden_runs = repo_scripts.load("tools/golden_runs.py")

# per ledger row (a client's ciphertexts of one block): SEAL compresses each fresh random ciphertext
# differently. Measured over 40 draws at N = 8192: uploads 330.5-331.9 kB, a 3-client packed sum 330.3-333.2 kB
# (a spread of 0.9 %); BFV rows of 34 kB within 200 B.
CIPHERTEXT_RTOL, CIPHERTEXT_ATOL = 0.015, 400
METRICS = ("f1_macro", "accuracy", "loss", "model_change_l2")
# plaintext and BFV: float32 rounding of another CPU's kernels (see the module docstring)
FLOAT_RTOL, FLOAT_ATOL = 1e-5, 1e-7


def test_golden_covers_every_case():
    assert set(GOLDEN) == set(golden_runs.CASES)


def _close(a, b, *, rtol: float, atol: float) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def _check_ledger(old, new):
    """Same messages (round, client, direction, category) in the same order; ciphertext sizes within SEAL's
    compression jitter, every other message byte for byte."""
    assert [{k: r[k] for k in r if k != "bytes"} for r in new] == [{k: r[k] for k in r if k != "bytes"} for r in old]
    for a, b in zip(old, new):
        if a["category"] == "ciphertext":
            assert abs(a["bytes"] - b["bytes"]) <= CIPHERTEXT_ATOL + CIPHERTEXT_RTOL * a["bytes"], (a, b)
        else:
            assert a["bytes"] == b["bytes"], (a, b)


@pytest.mark.parametrize("case", sorted(golden_runs.CASES))
def test_run_matches_golden(case):
    old = GOLDEN[case]
    new = golden_runs.run_case(case)
    assert [sorted(h) for h in new["history"]] == [sorted(h) for h in old["history"]]
    exact_transport = old["encryption"] in ("none", "bfv")  # no encryption noise: only float32 rounding
    if old["encryption"] == "none":
        assert new["ledger"] == old["ledger"]
    else:
        _check_ledger(old["ledger"], new["ledger"])
    for h_old, h_new in zip(old["history"], new["history"]):
        for key, value in h_old.items():
            if key.startswith("bytes_") and ("ciphertext" in key or key.endswith("_per_client")):
                assert _close(value, h_new[key], rtol=2 * CIPHERTEXT_RTOL, atol=2 * CIPHERTEXT_ATOL), (key, value, h_new[key])
            elif key.startswith("bytes_") or isinstance(value, (str, int)):  # counts, names: exact
                assert h_new[key] == value, (key, value, h_new[key])
            elif exact_transport:
                assert _close(value, h_new[key], rtol=FLOAT_RTOL, atol=FLOAT_ATOL), (key, value, h_new[key])
            elif key in METRICS:
                assert _close(value, h_new[key], rtol=1e-4, atol=1e-6), (key, value, h_new[key])
    w_old, w_new = np.asarray(old["final_weights"]), np.asarray(new["final_weights"])
    moved = max(old["history"][-1]["model_change_l2"], 1e-12)  # the scale of the updates
    rtol = FLOAT_RTOL if exact_transport else 1e-4
    assert np.linalg.norm(w_new - w_old) <= rtol * moved + 1e-6, np.linalg.norm(w_new - w_old)
