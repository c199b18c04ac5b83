"""medhe.ckks.table: the security-parameter table the security stage writes, row by row."""

from __future__ import annotations

import numpy as np
import pytest

from medhe.ckks import table

REFUSED = ("paper", 8192, (60, 60, 60, 60), 40)
SMALL = ("small", 4096, (60, 49), 40)


def test_refused_set_is_reported_with_its_reason_and_never_built() -> None:
    row = table.measure_set(*REFUSED, rng=np.random.default_rng(0))
    assert row["accepted"] is False
    assert row["total_bits"] == 240 and row["slots"] == 4096
    # the HE standard allows at most 218 bits at N = 8192 for 128-bit classical security
    assert row["security_classical"] is None and row["security_quantum"] is None
    assert "240" in row["reason"] and "218" in row["reason"]
    assert "ciphertext_bytes" not in row  # nothing measured on a refused set


def test_accepted_set_measures_size_precision_and_packing() -> None:
    row = table.measure_set(*SMALL, rng=np.random.default_rng(1), num_clients=5)
    assert row["accepted"] is True and row["reason"] == ""
    assert (row["total_bits"], row["slots"], row["security_classical"]) == (109, 2048, 128)
    # one 60-bit data prime: 2 polynomials x 4096 coefficients x 8 bytes + 140 bytes of headers
    # (golden in tests/test_ckks.py); zstd gains nothing on 60-bit words
    assert row["ciphertext_bytes"] == 2 * 4096 * 8 + 140
    assert row["bytes_per_value"] == pytest.approx((2 * 4096 * 8 + 140) / 2048)
    # CKKS error at scale 2^40 and N = 4096 is ~N 2^-40 per value, far below 1e-6; a sum of 5 adds up
    assert 0 < row["max_abs_error_single"] < 1e-6 and 0 < row["max_abs_error_sum"] < 5e-6
    # 60 - 40 - 2 = 18 exact bits; one 8-bit value plus 3 carry bits for 5 clients = 11 bits: B = 1
    assert row["max_exact_batch_8bit"] == 1


def test_security_table_has_one_row_per_set_in_order() -> None:
    rows = table.security_table([REFUSED, SMALL], rng=np.random.default_rng(2))
    assert [r["label"] for r in rows] == ["paper", "small"]
    assert [r["accepted"] for r in rows] == [False, True]


def test_parameter_sets_start_with_the_papers_set() -> None:
    label, n, bits, scale = table.PARAMETER_SETS[0]
    assert (n, bits, scale) == (8192, (60, 60, 60, 60), 40) and "paper" in label
