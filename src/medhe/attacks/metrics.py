"""ROC maths for membership inference (pure functions; members are the positive class).

Conventions: a score is "higher = more member-like"; a threshold ``t`` predicts
"member" iff ``score >= t``. Implementation follows scikit-learn's
``roc_curve(drop_intermediate=False)`` and ``roc_auc_score`` (ties count one half),
and is tested against them.

TPR at a fixed FPR uses the **step** ROC (no interpolation): the best TPR of any
threshold whose empirical FPR is at most the target, i.e. an operating point a
deterministic threshold actually reaches on this sample (Carlini et al. 2022 read
it off the same way). A target below the FPR resolution of the sample (the smallest
positive FPR on the curve, ``1 / n_nonmembers`` without ties) cannot be resolved
and gives NaN.

>>> fpr, tpr, thr = roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, False, True, False]))
>>> fpr.tolist(), tpr.tolist()
([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
>>> auc_from_roc(fpr, tpr)
0.75
"""

from __future__ import annotations

import math

import numpy as np


def check_scores(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64 and labels as bool, same length, both classes present.

    Raises:
        ValueError: On mismatched lengths, non-finite scores or a missing class.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_member)
    if s.ndim != 1 or y.ndim != 1 or len(s) != len(y):
        raise ValueError(f"scores and is_member must be 1-D of equal length, got shapes {s.shape} and {y.shape}")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"is_member must be boolean or 0/1, got values {np.unique(y)[:5].tolist()}")
        y = y.astype(bool)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(f"need both members and non-members, got n_members={n_pos}, n_nonmembers={len(y) - n_pos}")
    return s, y


def roc_curve(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve over every distinct threshold, starting at ``(0, 0)`` with threshold ``+inf``.

    Args:
        scores: Attack scores, higher = more member-like.
        is_member: True for members (positives).

    Returns:
        ``(fpr, tpr, thresholds)`` with thresholds decreasing; the point ``k`` is the
        rule ``score >= thresholds[k]``. Equals ``sklearn.metrics.roc_curve(...,
        drop_intermediate=False)``.
    """
    s, y = check_scores(scores, is_member)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = last + 1 - tps
    fpr = np.r_[0.0, fps / (len(y) - y.sum())]
    tpr = np.r_[0.0, tps / y.sum()]
    return fpr, tpr, np.r_[np.inf, s[last]]


def auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve by the trapezoid rule (exact for the empirical curve)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def roc_auc(scores: np.ndarray, is_member: np.ndarray) -> float:
    """Threshold-free AUC: P(member score > non-member score) + 1/2 P(tie)."""
    fpr, tpr, _ = roc_curve(scores, is_member)
    return auc_from_roc(fpr, tpr)


def check_fpr_target(target: float) -> float:
    """The target FPR as a float in (0, 1); anything else is a ValueError naming it."""
    if isinstance(target, bool) or not isinstance(target, (int, float, np.floating)) or not 0 < target < 1:
        raise ValueError(f"FPR target must be in (0, 1), got target={target!r}")
    return float(target)


def fpr_resolution(fpr: np.ndarray) -> float:
    """The smallest positive FPR on a curve: the finest FPR a threshold can resolve."""
    positive = fpr[fpr > 0]
    return float(positive.min()) if positive.size else math.inf


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, *, target: float) -> float:
    """Best TPR among ROC points with ``FPR <= target`` (step ROC, no interpolation).

    Returns NaN when ``target`` is below :func:`fpr_resolution` (too few non-members
    to tell an FPR of ``target`` from zero).

    >>> tpr_at_fpr(np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0, 1.0]), target=0.6)
    1.0
    >>> tpr_at_fpr(np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0, 1.0]), target=0.1)
    nan
    """
    target = check_fpr_target(target)
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if fpr.shape != tpr.shape or fpr.ndim != 1 or fpr.size < 2:
        raise ValueError(f"fpr and tpr must be 1-D curves of equal length >= 2, got {fpr.shape} and {tpr.shape}")
    if target < fpr_resolution(fpr):
        return math.nan
    return float(tpr[fpr <= target].max())


def balanced_accuracy(predicted: np.ndarray, is_member: np.ndarray) -> float:
    """``(TPR + TNR) / 2`` of boolean "member" predictions (= accuracy on balanced sets)."""
    pred = np.asarray(predicted, dtype=bool)
    y = np.asarray(is_member, dtype=bool)
    if pred.shape != y.shape:
        raise ValueError(f"predicted and is_member differ in shape: {pred.shape} vs {y.shape}")
    return float((pred[y].mean() + (~pred[~y]).mean()) / 2)


def fit_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold maximising balanced accuracy on the data given (the *calibration* split).

    The returned threshold lies halfway between two adjacent distinct scores, so it
    generalises symmetrically; ties between equally good thresholds go to the
    highest one. ``+inf`` / ``-inf`` mean "nobody" / "everybody" is a member.

    >>> fit_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([False, False, True, True]))
    0.5
    """
    fpr, tpr, thr = roc_curve(scores, is_member)
    gain = tpr - fpr
    best = int(np.flatnonzero(gain >= gain.max() - 1e-12)[0])  # tolerance: 1 - 1/3 vs 2/3 - 0 in floats
    if best == 0:
        return math.inf
    if best == len(thr) - 1:
        return -math.inf
    return float(thr[best] + (thr[best + 1] - thr[best]) / 2)


def bootstrap_ci(scores: np.ndarray, is_member: np.ndarray, *, threshold: float, n_resamples: int,
                 rng: np.random.Generator, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of balanced accuracy (at a fixed threshold) and AUC.

    Members and non-members are resampled separately (stratified), so every
    resample keeps the evaluation split's sizes. The threshold stays fixed: the CI
    covers the sampling noise of the evaluation split, not of the calibration fit.

    Returns:
        ``{"success_rate": (lo, hi), "auc": (lo, hi)}``.
    """
    from scipy.stats import rankdata

    s, y = check_scores(scores, is_member)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got n_resamples={n_resamples!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got level={level!r}")
    pos, neg = s[y], s[~y]
    bp = pos[rng.integers(0, len(pos), size=(n_resamples, len(pos)))]
    bn = neg[rng.integers(0, len(neg), size=(n_resamples, len(neg)))]
    ba = ((bp >= threshold).mean(axis=1) + (bn < threshold).mean(axis=1)) / 2
    ranks = rankdata(np.concatenate([bp, bn], axis=1), axis=1)
    n_p, n_n = len(pos), len(neg)
    auc = (ranks[:, :n_p].sum(axis=1) - n_p * (n_p + 1) / 2) / (n_p * n_n)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    return {"success_rate": tuple(float(v) for v in np.quantile(ba, q)),  # type: ignore[dict-item]
            "auc": tuple(float(v) for v in np.quantile(auc, q))}
