"""Adaptive clipping (Andrew et al. 2021): the geometric step, and the law that the bound tracks the quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from medhe.clipping import QuantileClipBound, clip_fraction_removed, next_bound


def test_next_bound_is_the_geometric_step() -> None:
    # C * exp(-lr (b - gamma)), written out: 2 * exp(-0.5 * (0.2 - 0.9)) = 2 * exp(0.35)
    assert next_bound(2.0, frac_unclipped=0.2, target_quantile=0.9, lr=0.5) == pytest.approx(2.0 * math.exp(0.35))
    assert next_bound(2.0, frac_unclipped=0.9, target_quantile=0.9, lr=0.5) == pytest.approx(2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_bound_follows_the_target_quantile_of_the_norms(seed: int, gamma: float) -> None:
    """Law: on stationary norms the bound settles near their gamma-quantile and gamma of clients stay unclipped."""
    rng = np.random.default_rng(seed)
    dist = stats.lognorm(s=0.3, scale=2.0)
    b = QuantileClipBound(initial=0.5, target_quantile=gamma, lr=0.2)
    unclipped = []
    for _ in range(3000):
        norms = dist.rvs(size=5, random_state=rng)
        unclipped.append(np.mean(norms <= b.value))
        b.update(norms)
    late = np.asarray(b.history[1000:])
    assert np.median(late) == pytest.approx(dist.ppf(gamma), rel=0.08)
    assert np.mean(unclipped[1000:]) == pytest.approx(gamma, abs=0.03)


def test_calibration_takes_the_quantile_of_the_first_norms_and_never_clips_the_top_norm_by_rounding() -> None:
    b = QuantileClipBound(initial=None, target_quantile=0.9, lr=1.0)
    assert not b.calibrated
    with pytest.raises(RuntimeError, match="not calibrated"):
        b.value
    norms = [0.1, 0.3, 0.2, 0.4, 0.123456789]
    assert b.calibrate(norms) >= 0.4  # inverted-CDF 0.9-quantile of 5 norms is the largest, float32 rounded up
    assert b.value == pytest.approx(0.4, rel=1e-7)
    assert b.update(norms) < b.history[0]  # all 5 unclipped > 0.9: the bound shrinks


def test_fraction_removed() -> None:
    assert clip_fraction_removed(4.0, 1.0) == 0.75
    assert clip_fraction_removed(1.0, 4.0) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"initial": 0.0, "target_quantile": 0.5, "lr": 0.2}, "initial clip bound"),
    ({"initial": None, "target_quantile": 1.5, "lr": 0.2}, "target_quantile"),
    ({"initial": None, "target_quantile": 0.0, "lr": 0.2}, "target_quantile"),
    ({"initial": None, "target_quantile": 0.5, "lr": -1.0}, "lr must be"),
])
def test_bad_knobs_are_refused_by_name(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        QuantileClipBound(**kwargs)


def test_bad_bits_and_norms_are_refused() -> None:
    b = QuantileClipBound(initial=1.0, target_quantile=0.5, lr=0.2)
    with pytest.raises(ValueError, match="booleans"):
        b.step([1, 0])
    with pytest.raises(ValueError, match="norms"):
        b.update([1.0, float("nan")])
