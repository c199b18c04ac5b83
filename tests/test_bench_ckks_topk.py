"""The random top-k decryption benchmark (benchmarks/bench_ckks_topk.py) counts what it says it counts."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import repo_scripts
from medhe import ckks, params

ROOT = Path(__file__).resolve().parents[1]
bench = repo_scripts.load("benchmarks/bench_ckks_topk.py")

P = params.load(ROOT / "profiles" / "quick.yaml")
SMALL = dict(trials=2, clients=5, size=20_000, sparsity=0.9, seed=3)


@pytest.mark.parametrize("packed", [True, False])
def test_random_index_sets_decrypt_correctly_with_the_pipeline_parameters(packed):
    r = bench.count_failures(P, packed=packed, **SMALL)
    assert (r["decryptions"], r["failed"]) == (2, 0)
    # 5 random sets of k = 2,000 of 20,000 coordinates: the union holds about 20,000 (1 - 0.9^5) = 8,190 each trial
    assert 2 * 7_800 < r["values_checked"] < 2 * 8_600
    # 4,096 slots: one packed ciphertext (4 values per slot) per trial; 2 or 3 unpacked (the union is near 8,192)
    assert r["ciphertexts"] == 2 if packed else 4 <= r["ciphertexts"] <= 6
    assert 0 < r["max_abs_error"] < 1e-7  # CKKS noise at scale 2^40 (unpacked) or float32 rounding (packed)


def test_a_packed_sum_off_by_one_integer_is_counted(monkeypatch):
    real = ckks.decrypt_packed

    def off_by_one(*args, **kwargs):
        q = np.asarray(real(*args, **kwargs)).copy()
        q[len(q) // 2] += 1
        return q

    monkeypatch.setattr(ckks, "decrypt_packed", off_by_one)
    assert bench.count_failures(P, packed=True, **SMALL)["failed"] == 2


def test_an_unpacked_value_off_by_more_than_the_tolerance_is_counted(monkeypatch):
    real = ckks.decrypt_vector

    def drift(*args, **kwargs):
        v = np.asarray(real(*args, **kwargs)).copy()
        v[0] += 10 * bench.TOL
        return v

    monkeypatch.setattr(ckks, "decrypt_vector", drift)
    assert bench.count_failures(P, packed=False, **SMALL)["failed"] == 2


def test_a_round_that_raises_is_a_failed_decryption():
    """B = 5 values per slot exceed the 8-bit, 5-client budget: the transport refuses to encrypt."""
    wide = dataclasses.replace(P, ckks=dataclasses.replace(P.ckks, pack_batch=5))
    r = bench.count_failures(wide, packed=True, **SMALL)
    assert (r["failed"], r["max_abs_error"]) == (2, 0.0)
