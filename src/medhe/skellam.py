"""The distributed Skellam mechanism for integer (quantised) aggregation: noise, sensitivity, accounting.

Implements the multi-dimensional Skellam mechanism of Agarwal, Kairouz & Liu, "The Skellam
Mechanism for Differentially Private Federated Learning" (NeurIPS 2021,
https://arxiv.org/abs/2110.04995). Skellam noise with variance mu is Poisson(mu / 2) -
Poisson(mu / 2): integer-valued, and closed under summation, so n clients that each add an
independent share of variance mu / n to their *integer* (already quantised) update make the
exact integer sum carry Skellam noise of variance mu. Nothing is rounded after the noise, so
the released sum (and anything computed from it, such as the sum modulo the BFV plain modulus)
is the Skellam mechanism applied to the sum of the clients' integer vectors.

Privacy (the paper's Corollary 3.6, for integer alpha > 1 and integer-valued inputs whose
sum changes by a vector of L2 norm <= D2 and L1 norm <= D1 under the neighbouring relation):

    eps_RDP(alpha) <= alpha D2^2 / (2 mu) + min(((2 alpha - 1) D2^2 + 6 D1) / (4 mu^2), 3 D1 / (2 mu)).

The first term is the Gaussian mechanism's RDP at the same variance; the rest is the price of
discreteness. RDP composes additively over rounds and converts to (epsilon, delta) as
``dp_accounting``'s RDP accountant does (Balle et al. 2020, Proposition 12 of arXiv 2004.00010).
For an integer vector, ||q||_1 <= ||q||_2^2 (every nonzero entry has |q_j| >= 1) and
||q||_1 <= sqrt(d) ||q||_2, so D1 = min(D2^2, sqrt(d) D2) (:func:`integer_l1_bound`).

Warning:
    A simulation: shares are drawn from numpy's PCG64 seeded by (seed, client, round); see
    :mod:`medhe.privacy` for what that does not protect against.

>>> round(skellam_rdp(2, l2=10.0, l1=100.0, variance=400.0), 6)
0.251406
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["ORDERS", "SkellamAccountant", "integer_l1_bound", "rdp_to_epsilon", "round_to_l2", "sample_skellam",
           "skellam_rdp"]

ORDERS: tuple[int, ...] = tuple(range(2, 64)) + (64, 80, 96, 128, 192, 256, 512, 1024)
MECHANISM = "distributed Skellam mechanism (Agarwal, Kairouz & Liu 2021) on the exact integer sum"


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < value < math.inf:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def skellam_rdp(alpha: int, *, l2: float, l1: float, variance: float) -> float:
    """RDP of order ``alpha`` of the Skellam mechanism (Agarwal, Kairouz & Liu 2021, Corollary 3.6).

    Args:
        alpha: Integer order > 1.
        l2: L2 sensitivity D2 of the integer sum.
        l1: L1 sensitivity D1 of the integer sum.
        variance: mu, the variance of the summed Skellam noise per coordinate.

    Raises:
        ValueError: On a non-integer or too small order, or non-positive parameters.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, np.integer)) or alpha < 2:
        raise ValueError(f"alpha must be an integer >= 2 (the bound is for integer orders), got {alpha!r}")
    d2, d1, mu = _check_positive("l2", l2), _check_positive("l1", l1), _check_positive("variance", variance)
    a = int(alpha)
    return a * d2**2 / (2 * mu) + min(((2 * a - 1) * d2**2 + 6 * d1) / (4 * mu**2), 3 * d1 / (2 * mu))


def rdp_to_epsilon(orders: Sequence[float], rdp: Sequence[float], delta: float) -> float:
    """(epsilon, delta) from an RDP curve: min over orders of r + log(1 - 1/a) - log(delta a) / (a - 1)."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return max(0.0, min(r + math.log1p(-1 / a) - math.log(delta * a) / (a - 1) for a, r in zip(orders, rdp)))


def integer_l1_bound(l2: float, dim: int) -> float:
    """L1 bound of an integer vector of L2 norm <= l2 in ``dim`` coordinates: min(l2^2, sqrt(dim) l2).

    >>> integer_l1_bound(3.0, 100), integer_l1_bound(30.0, 100)
    (9.0, 300.0)
    """
    l2 = _check_positive("l2", l2)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    return min(l2 * l2, math.sqrt(int(dim)) * l2)


def sample_skellam(n: int, *, variance: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of Skellam noise with the given variance: Poisson(v/2) - Poisson(v/2), int64."""
    if not (math.isfinite(variance) and variance >= 0):
        raise ValueError(f"variance must be finite and >= 0, got {variance!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    lam = variance / 2
    return rng.poisson(lam, size=n).astype(np.int64) - rng.poisson(lam, size=n).astype(np.int64)


def round_to_l2(y: np.ndarray, *, l2: float, levels: int) -> np.ndarray:
    """Round ``y`` to integers in [-levels, levels] with L2 norm <= ``l2`` (deterministic).

    Nearest rounding (``np.rint``) can raise the norm above ||y||; then y is shrunk by the largest
    factor g in [0, 1] (bisection, 60 steps) with ||rint(g y)||_2 <= l2. Each |rint(g y_j)| is
    non-decreasing in g, so the norm is too and bisection finds the boundary. The result's norm
    is <= l2 always, which is what the sensitivity needs.
    """
    y = np.clip(np.asarray(y, dtype=np.float64), -levels, levels)

    def r(g: float) -> np.ndarray:
        return np.rint(g * y).astype(np.int64)

    q = r(1.0)
    if float(np.linalg.norm(q)) <= l2:
        return q
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(np.linalg.norm(r(mid))) <= l2:
            lo = mid
        else:
            hi = mid
    return r(lo)


@dataclass
class SkellamAccountant:
    """Per-round Skellam parameters (D2, D1, mu) and the composed epsilon (RDP over :data:`ORDERS`)."""

    delta: float
    rounds: list[dict[str, float]] = field(default_factory=list)

    def add_round(self, *, l2: float, l1: float, variance: float) -> None:
        self.rounds.append({"l2": float(l2), "l1": float(l1), "variance": float(variance)})

    def epsilon(self) -> float:
        """Epsilon at :attr:`delta` after the rounds so far (0.0 before any round)."""
        if not self.rounds:
            return 0.0
        rdp = [sum(skellam_rdp(a, **r) for r in self.rounds) for a in ORDERS]
        return rdp_to_epsilon(ORDERS, rdp, self.delta)

    def state_dict(self) -> dict[str, Any]:
        return {"mechanism": MECHANISM, "delta": self.delta, "rounds": [dict(r) for r in self.rounds],
                "orders": list(ORDERS)}
