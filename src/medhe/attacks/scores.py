"""Per-example membership scores from model outputs (pure functions, higher = more member-like).

Every score is computed from log-probabilities, never from rounded probabilities:
a well-trained model puts ``p_y = 1.0`` (in float32) on most records, members and
non-members alike, and scores computed from such probabilities tie. Working in log
space (:func:`log_softmax` uses ``log1p``) keeps them apart.

Scores (Song & Mittal 2021, "Systematic Evaluation of Privacy Risks of Machine
Learning Models", https://arxiv.org/abs/2003.10595, section 3):

* :func:`confidence_score`: the true-label probability ``F_y`` (as ``log F_y``, the
  same ordering), or the maximum probability with ``kind="max"``.
* :func:`entropy_score`: minus the prediction entropy ``-H(F(x))``.
* :func:`modified_entropy_score`: minus ``Mentr(F(x), y) = -(1 - F_y) log F_y
  - sum_{i != y} F_i log(1 - F_i)``.
* :func:`logit_confidence`: ``phi = log(F_y / (1 - F_y))`` (Carlini et al. 2022), the
  statistic LiRA fits Gaussians to.

>>> lp = log_proba_from_proba(np.array([[0.7, 0.2, 0.1]]))
>>> round(float(modified_entropy(lp, np.array([0]))[0]), 6)
0.162167
"""

from __future__ import annotations

from typing import Literal

import numpy as np

PROBA_ATOL = 1e-3  # rows of probabilities must sum to 1 within this (float32 softmax rounding)
_LOG_FLOOR = float(np.log(np.finfo(np.float64).tiny))  # log of the smallest normal float64


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64, accurate for saturated rows (uses ``log1p``).

    >>> bool(log_softmax(np.array([[50.0, 0.0]]))[0, 0] < 0)
    True
    """
    z = _matrix(logits, what="logits")
    top = z.argmax(axis=1)
    shifted = z - z[np.arange(len(z)), top][:, None]
    rest = np.exp(shifted)
    rest[np.arange(len(z)), top] = 0.0  # log-sum-exp = max + log1p(sum of the others)
    return shifted - np.log1p(rest.sum(axis=1))[:, None]


def log_proba_from_proba(proba: np.ndarray, *, atol: float = PROBA_ATOL) -> np.ndarray:
    """Checked probabilities -> log-probabilities (zeros floored at the smallest normal float).

    Raises:
        ValueError: If ``proba`` is not a 2-D matrix in [0, 1] whose rows sum to 1 within ``atol``.
    """
    p = _matrix(proba, what="proba")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"proba must lie in [0, 1], got values in [{p.min()}, {p.max()}]")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > atol:
        raise ValueError(f"proba rows must sum to 1 (atol={atol}); row {worst} sums to {float(sums[worst])!r}")
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(p), _LOG_FLOOR)


def check_labels(labels: np.ndarray, *, n: int, num_classes: int, what: str = "labels") -> np.ndarray:
    """Labels as int64, checked for length ``n`` and range ``[0, num_classes)``."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{what} must be 1-D with {n} entries (one per output row), got shape {y.shape}")
    if n and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{what} must be integers in [0, {num_classes}), got dtype {y.dtype} "
                         f"and values {np.unique(y)[:5].tolist()}")
    return y.astype(np.int64)


def log1m_proba(logp: np.ndarray) -> np.ndarray:
    """``log(1 - F_i)`` for every entry, as the log-sum-exp of the *other* classes' log-probabilities."""
    n, c = logp.shape
    out = np.empty_like(logp)
    for i in range(c):
        others = np.delete(logp, i, axis=1)
        top = others.max(axis=1)
        out[:, i] = top + np.log(np.exp(others - top[:, None]).sum(axis=1))
    return out


def confidence_score(logp: np.ndarray, labels: np.ndarray,
                     *, kind: Literal["true_label", "max"] = "true_label") -> np.ndarray:
    """Confidence attack score: ``log F_y`` (true label) or ``log max_i F_i`` (label-free)."""
    if kind == "true_label":
        return logp[np.arange(len(logp)), labels]
    if kind == "max":
        return logp.max(axis=1)
    raise ValueError(f"confidence kind must be 'true_label' or 'max', got kind={kind!r}")


def entropy(logp: np.ndarray) -> np.ndarray:
    """Prediction entropy ``H(F(x)) = -sum_i F_i log F_i`` (nats)."""
    return -(np.exp(logp) * logp).sum(axis=1)


def entropy_score(logp: np.ndarray) -> np.ndarray:
    """Entropy attack score ``-H``: members tend to get more confident (lower-entropy) outputs."""
    return -entropy(logp)


def modified_entropy(logp: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``Mentr(F(x), y) = -(1 - F_y) log F_y - sum_{i != y} F_i log(1 - F_i)`` (Song & Mittal 2021, eq. 5).

    >>> lp = log_proba_from_proba(np.array([[0.9, 0.1]]))
    >>> round(float(modified_entropy(lp, np.array([1]))[0]), 4)  # wrong label: large
    4.1447
    """
    rows = np.arange(len(logp))
    p = np.exp(logp)
    l1m = log1m_proba(logp)
    true_term = -(-np.expm1(logp[rows, labels])) * logp[rows, labels]
    other = -(p * l1m)
    other[rows, labels] = 0.0
    return true_term + other.sum(axis=1)


def modified_entropy_score(logp: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Modified-entropy attack score ``-Mentr``: members have low Mentr."""
    return -modified_entropy(logp, labels)


def logit_confidence(logp: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``phi = log(F_y) - log(1 - F_y)``, the logit-scaled true-label confidence of LiRA."""
    rows = np.arange(len(logp))
    return logp[rows, labels] - log1m_proba(logp)[rows, labels]


def attack_features(logp: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Features of the learned (logistic) attack, one row per record.

    Columns: the probabilities sorted in decreasing order (C columns), ``log F_y``
    (minus the loss), the entropy, the modified entropy and ``phi``.
    """
    sorted_p = -np.sort(-np.exp(logp), axis=1)
    rows = np.arange(len(logp))
    return np.column_stack([sorted_p, logp[rows, labels], entropy(logp), modified_entropy(logp, labels),
                            logit_confidence(logp, labels)])


def _matrix(x: np.ndarray, *, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"{what} must be a 2-D (n, classes >= 2) matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or inf")
    return a
