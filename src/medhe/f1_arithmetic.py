"""Which F1 scores a binary classifier can reach at a given accuracy on a given test set (pure arithmetic).

On a test set of ``n`` examples, ``positive`` of them of class 1, a classifier that makes ``e``
errors splits them into ``fn`` missed positives and ``fp = e - fn`` false alarms. Then

* binary F1 (class 1) = 2 TP / (2 TP + FP + FN), TP = positive - fn;
* negative-class F1 = 2 TN / (2 TN + FP + FN), TN = negative - fp;
* macro-F1 = their mean.

Ranging ``fn`` over every split gives the lowest and highest score the accuracy allows. A claimed
mean over ``k`` trials with a sample std ``s`` can reach further: each trial's accuracy lies within
``s (k - 1) / sqrt(k)`` of the mean, and :func:`mean_f1_upper_bound` bounds the mean score over
that range (by the best trial, and by the chord when the bound is convex in the accuracy).
Errors are treated as a real number (a relaxation: integers only lower the maximum).
"""

from __future__ import annotations

import math

import numpy as np

AVERAGES = ("binary", "macro")
_GRID = 4001  # splits fn evaluated per error count


def _check(*, n: int, positive: int, accuracy: float) -> None:
    if not (isinstance(n, (int, np.integer)) and n > 0):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (isinstance(positive, (int, np.integer)) and 0 < positive < n):
        raise ValueError(f"positive must be an integer in (0, n={n}), got {positive!r}")
    if not (math.isfinite(accuracy) and 0 <= accuracy <= 1):
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r}")


def f1_range(*, n: int, positive: int, accuracy: float, average: str) -> tuple[float, float]:
    """(lowest, highest) F1 of class 1 (``average='binary'``) or macro-F1 at this accuracy.

    >>> [round(x, 4) for x in f1_range(n=829, positive=713, accuracy=0.895, average="binary")]
    [0.935, 0.9425]
    >>> round(f1_range(n=829, positive=713, accuracy=0.895, average="macro")[1], 4)
    0.8311
    """
    _check(n=n, positive=positive, accuracy=accuracy)
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    negative = n - positive
    e = n * (1.0 - accuracy)
    fn = np.linspace(max(0.0, e - negative), min(e, float(positive)), _GRID)
    fp = e - fn
    tp, tn = positive - fn, negative - fp
    f1_pos = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-300)
    if average == "binary":
        score = f1_pos
    else:
        score = (f1_pos + 2 * tn / np.maximum(2 * tn + fp + fn, 1e-300)) / 2
    return float(score.min()), float(score.max())


def max_f1(*, n: int, positive: int, accuracy: float, average: str) -> float:
    """The highest F1 any classifier reaches at this accuracy (:func:`f1_range`'s maximum; it grows with
    the accuracy, since fewer errors leave every split's F1 higher)."""
    return f1_range(n=n, positive=positive, accuracy=accuracy, average=average)[1]


def mean_f1_upper_bound(*, n: int, positive: int, accuracy: float, accuracy_std: float, trials: int,
                        average: str, rounding: float = 0.0005) -> dict[str, float]:
    """Upper bound on the mean F1 of ``trials`` runs whose accuracies have this mean and sample std.

    ``rounding`` widens the mean and the std by half the last printed digit (0.895 may be 0.8955).
    Each trial lies in [lo, hi] = mean -+ std (k - 1) / sqrt(k). The bound is the smaller of
    ``max_f1(hi)`` (the mean cannot beat the best trial) and, when the maximum is convex in the
    accuracy on [lo, hi], the chord through (lo, hi) evaluated at the mean (Jensen).

    >>> b = mean_f1_upper_bound(n=829, positive=713, accuracy=0.895, accuracy_std=0.008, trials=5, average="binary")
    >>> round(b["bound"], 4), round(b["best_trial"], 4)
    (0.9428, 0.9507)
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials!r}")
    if not (math.isfinite(accuracy_std) and accuracy_std >= 0):
        raise ValueError(f"accuracy_std must be finite and >= 0, got {accuracy_std!r}")
    mean = min(1.0, accuracy + rounding)
    reach = (accuracy_std + rounding) * (trials - 1) / math.sqrt(trials)
    lo, hi = max(0.0, mean - reach), min(1.0, mean + reach)
    h = lambda a: max_f1(n=n, positive=positive, accuracy=a, average=average)  # noqa: E731
    at_mean, best = h(mean), h(hi)
    bound = best
    if hi > lo:
        grid = np.linspace(lo, hi, 41)
        vals = np.array([h(a) for a in grid])
        if np.all(np.diff(vals, 2) >= -1e-9):  # convex on [lo, hi]: mean of h <= chord at the mean
            bound = min(best, h(lo) + (h(hi) - h(lo)) * (mean - lo) / (hi - lo))
    return {"at_mean": at_mean, "best_trial": best, "bound": bound, "lo": lo, "hi": hi}
