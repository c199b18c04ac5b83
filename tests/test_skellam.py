"""The Skellam mechanism: its RDP bound against the Renyi divergence computed from the exact pmf, and laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import logsumexp
from scipy.stats import skellam as sp_skellam

from medhe import rng as medhe_rng
from medhe.skellam import (ORDERS, SkellamAccountant, integer_l1_bound, rdp_to_epsilon, round_to_l2, sample_skellam,
                           skellam_rdp)


def _renyi_shifted_skellam(alpha: int, shift: int, variance: float) -> float:
    """D_alpha(Sk + shift || Sk) for symmetric Skellam of the given variance, summed from scipy's pmf
    over +-(25 std + 25 + shift), where both pmfs are still finite (the rest is negligible)."""
    half = int(shift + 25 * math.sqrt(variance) + 25)
    k = np.arange(-half, half + 1)
    lp = sp_skellam.logpmf(k - shift, variance / 2, variance / 2)
    lq = sp_skellam.logpmf(k, variance / 2, variance / 2)
    terms = alpha * lp + (1 - alpha) * lq
    assert np.all(np.isfinite(terms))
    return float(logsumexp(terms)) / (alpha - 1)


@pytest.mark.parametrize("variance", [10.0, 100.0, 1000.0])
@pytest.mark.parametrize("shift", [1, 3, 10])
@pytest.mark.parametrize("alpha", [2, 5, 20, 64])
def test_rdp_bound_is_above_the_numeric_renyi_divergence(variance: float, shift: int, alpha: int) -> None:
    """One coordinate, sensitivity D1 = D2 = shift: the paper's bound must dominate the exact divergence."""
    numeric = _renyi_shifted_skellam(alpha, shift, variance)
    assert numeric <= skellam_rdp(alpha, l2=shift, l1=shift, variance=variance) * (1 + 1e-9)


@pytest.mark.parametrize("alpha", [2, 5, 20])
def test_rdp_bound_is_sharp_at_large_variance(alpha: int) -> None:
    """At mu = 1000 the Skellam is nearly Gaussian: the bound is within 1 % of the exact divergence."""
    numeric = _renyi_shifted_skellam(alpha, 3, 1000.0)
    assert skellam_rdp(alpha, l2=3, l1=3, variance=1000.0) <= numeric * 1.01


def test_shares_sum_to_skellam_of_the_total_variance() -> None:
    n, d, total = 5, 400_000, 40.0
    s = sum(sample_skellam(d, variance=total / n, rng=medhe_rng.generator(3, "dp-noise-skellam", i, 1))
            for i in range(n))
    assert s.dtype == np.int64
    assert np.var(s) == pytest.approx(total, rel=0.02) and abs(np.mean(s)) < 5 * math.sqrt(total / d)
    # the empirical pmf of the sum matches Skellam(total/2, total/2) (closure under summation)
    for k in (0, 3, -7):
        assert np.mean(s == k) == pytest.approx(sp_skellam.pmf(k, total / 2, total / 2), abs=0.003)


@settings(max_examples=60, deadline=None)
@given(y=hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(-50, 50)), l2=st.floats(0.5, 100.0))
def test_round_to_l2_never_exceeds_the_sensitivity(y: np.ndarray, l2: float) -> None:
    q = round_to_l2(y, l2=l2, levels=31)
    assert q.dtype == np.int64 and np.all(np.abs(q) <= 31)
    assert float(np.linalg.norm(q)) <= l2
    assert float(np.abs(q).sum()) <= integer_l1_bound(l2, y.size) + 1e-9


def test_accountant_composes_rounds_and_converts_like_dp_accounting() -> None:
    acc = SkellamAccountant(delta=1e-5)
    for _ in range(3):
        acc.add_round(l2=20.0, l1=400.0, variance=1e4)
    rdp = [3 * skellam_rdp(a, l2=20.0, l1=400.0, variance=1e4) for a in ORDERS]
    assert acc.epsilon() == pytest.approx(rdp_to_epsilon(ORDERS, rdp, 1e-5))
    # the conversion equals dp_accounting's for a Gaussian RDP curve at the same integer orders
    from dp_accounting import rdp as dp_rdp

    gauss = [a / (2 * 2.0**2) for a in ORDERS]
    eps_lib, _ = dp_rdp.rdp_privacy_accountant.compute_epsilon(ORDERS, gauss, 1e-5)
    assert rdp_to_epsilon(ORDERS, gauss, 1e-5) == pytest.approx(eps_lib, rel=1e-12)
    # large variance: Skellam's epsilon approaches the Gaussian's at z = sqrt(mu) / D2
    big = SkellamAccountant(delta=1e-5)
    big.add_round(l2=1000.0, l1=1000.0**2, variance=(2.0 * 1000.0) ** 2)
    assert big.epsilon() == pytest.approx(rdp_to_epsilon(ORDERS, gauss, 1e-5), rel=1e-3)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: skellam_rdp(1, l2=1.0, l1=1.0, variance=1.0), "alpha"),
    (lambda: skellam_rdp(2.5, l2=1.0, l1=1.0, variance=1.0), "alpha"),
    (lambda: skellam_rdp(2, l2=1.0, l1=1.0, variance=0.0), "variance"),
    (lambda: integer_l1_bound(1.0, 0), "dim"),
    (lambda: sample_skellam(3, variance=-1.0, rng=np.random.default_rng(0)), "variance"),
])
def test_bad_inputs_name_the_value(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
