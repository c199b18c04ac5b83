"""The L2 bound a client clips its update to: the paper's fixed norm, or one that tracks a quantile.

Clipping serves two purposes in MedHE: the sensitivity of the DP mechanism, and the public
quantisation range of packed CKKS and BFV. Under DP the bound is the paper's fixed ``dp.clip_norm``
(the accountant needs it). Without the DP mechanism a fixed C = 1 halves an update whose norm is
about 2, so the bound becomes *adaptive*: it tracks the ``target_quantile`` of the clients' update
norms with the geometric update of Andrew, Thakkar, McMahan and Ramaswamy, "Differentially Private
Learning with Adaptive Clipping" (NeurIPS 2021, arXiv 1905.03871, Alg. 1):

    b_i = [ ||x_i|| <= C_t ]  (one bit per client),
    C_{t+1} = C_t * exp(-lr * (mean_i b_i - target_quantile)).

Here the bits travel without noise (Andrew et al. noise them under DP; a method with DP noise keeps
the fixed bound, :class:`medhe.fl.methods.MethodSpec` refuses the combination). The first bound is
``initial`` or, if that is None, the ``target_quantile`` of the clients' first-round norms, which
they report once (a scalar each; acceptable only without DP, as here).

>>> b = QuantileClipBound(initial=1.0, target_quantile=0.5, lr=0.2)
>>> round(b.update([0.5, 2.0, 3.0, 4.0]), 4)     # one of four under the bound: C grows
1.0513
>>> b.history
[1.0]
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["QuantileClipBound", "next_bound", "clip_fraction_removed"]


def _check_fraction(name: str, value: float, *, closed_low: bool = True) -> float:
    ok = isinstance(value, (int, float, np.floating)) and math.isfinite(value)
    if not ok or not ((0.0 <= value) if closed_low else (0.0 < value)) or value > 1.0:
        raise ValueError(f"{name} must be a fraction in {'[' if closed_low else '('}0, 1], got {value!r}")
    return float(value)


def _check_norms(norms: Sequence[float]) -> np.ndarray:
    arr = np.asarray(norms, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"norms must be a non-empty list of finite values >= 0, got {norms!r}")
    return arr


def _float32_at_least(value: float) -> float:
    """The smallest float32 >= ``value`` (bounds travel as float32; rounding down would clip the top norm)."""
    v = np.float32(value)
    if float(v) < value:
        v = np.nextafter(v, np.float32(np.inf))
    return float(v)


def next_bound(bound: float, *, frac_unclipped: float, target_quantile: float, lr: float) -> float:
    """Andrew et al.'s geometric step: ``bound * exp(-lr * (frac_unclipped - target_quantile))``.

    >>> round(next_bound(1.0, frac_unclipped=0.0, target_quantile=0.5, lr=0.2), 6)
    1.105171
    """
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"bound must be finite and > 0, got {bound!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr!r}")
    frac = _check_fraction("frac_unclipped", frac_unclipped)
    gamma = _check_fraction("target_quantile", target_quantile)
    return float(bound * math.exp(-lr * (frac - gamma)))


def clip_fraction_removed(norm: float, bound: float) -> float:
    """The fraction of an update's L2 norm that clipping to ``bound`` removes: ``1 - min(1, bound/norm)``.

    >>> clip_fraction_removed(2.0, 1.0), clip_fraction_removed(0.5, 1.0)
    (0.5, 0.0)
    """
    if norm <= bound or norm == 0:
        return 0.0
    return float(1.0 - bound / norm)


class QuantileClipBound:
    """Per-run state of an adaptive clip bound (the server's; every value it holds is public).

    Args:
        initial: First bound, > 0; None calibrates it from the first round's norms.
        target_quantile: Fraction of clients meant to stay unclipped, in (0, 1].
        lr: Step size of the geometric update, > 0 (Andrew et al. use 0.2).
    """

    def __init__(self, *, initial: float | None, target_quantile: float, lr: float) -> None:
        if initial is not None and not (isinstance(initial, (int, float)) and math.isfinite(initial) and initial > 0):
            raise ValueError(f"initial clip bound must be None or finite and > 0, got {initial!r}")
        self.target_quantile = _check_fraction("target_quantile", target_quantile, closed_low=False)
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {lr!r}")
        self.lr = float(lr)
        self._value = None if initial is None else float(initial)
        self.history: list[float] = []
        """The bound used in each round."""

    @property
    def calibrated(self) -> bool:
        """False until a first bound exists (``initial`` given, or :meth:`calibrate` called)."""
        return self._value is not None

    @property
    def value(self) -> float:
        if self._value is None:
            raise RuntimeError("the clip bound is not calibrated yet: call calibrate(norms) with the first round's norms")
        return self._value

    def calibrate(self, norms: Sequence[float]) -> float:
        """Set the first bound to the ``target_quantile`` of ``norms`` (the clients' first-round norms)."""
        arr = _check_norms(norms)
        value = float(np.quantile(arr, self.target_quantile, method="inverted_cdf"))
        if value <= 0:
            value = float(arr.max()) or 1.0
        self._value = _float32_at_least(value)
        return self._value

    def update(self, norms: Sequence[float]) -> float:
        """:meth:`step` with the bits ``norm <= bound`` of ``norms``; returns the new bound."""
        arr = _check_norms(norms)
        return self.step((arr <= self.value).tolist())

    def step(self, unclipped: Sequence[bool]) -> float:
        """Record the round's bound, then step it from the clients' bits (True: not clipped); returns the new bound."""
        bits = np.asarray(unclipped)
        if bits.ndim != 1 or bits.size == 0 or bits.dtype != bool:
            raise ValueError(f"unclipped must be a non-empty list of booleans, got {unclipped!r}")
        self.history.append(self.value)
        nxt = next_bound(self.value, frac_unclipped=float(bits.mean()), target_quantile=self.target_quantile,
                         lr=self.lr)
        self._value = float(np.float32(nxt))  # the bound is broadcast as one float32
        return self._value
