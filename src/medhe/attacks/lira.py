"""Likelihood-ratio attack (LiRA): the per-example Gaussian maths, pure.

Implementation based on Carlini et al., "Membership Inference Attacks From First
Principles" (IEEE S&P 2022, https://arxiv.org/abs/2112.03570), section IV. For a
record ``(x, y)`` the statistic is the logit-scaled confidence
``phi = log(F_y / (1 - F_y))`` (:func:`medhe.attacks.scores.logit_confidence`).

* Offline ("out-only"): fit ``N(mu_out, sigma_out^2)`` to ``phi`` of the shadow
  models that did **not** train on the record; score the target's ``phi`` by the
  one-sided test ``Pr[Z < phi_target]``. We return the z-score
  ``(phi - mu_out) / sigma_out``, which ranks records exactly as that probability does.
* Online: also fit ``N(mu_in, sigma_in^2)`` over shadows that did train on it; the
  score is the log-likelihood ratio ``log N(phi; in) - log N(phi; out)``.

With few shadows a per-example variance is unreliable; ``fixed_variance=True``
(Carlini et al.'s advice below 64 shadows) uses one pooled within-record variance
per distribution. Which shadow trains on which record is
:func:`shadow_assignment`; the training itself is in :mod:`medhe.attacks.evaluate`.

>>> phi = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]])  # 3 shadows x 2 records
>>> out = np.ones((3, 2), dtype=bool)
>>> lira_offline(np.array([3.0, 1.0]), phi, ~out, fixed_variance=False).round(3).tolist()
[2.0, 0.0]
"""

from __future__ import annotations

import numpy as np

MIN_STD = 1e-6  # floor on fitted standard deviations (identical shadow outputs)


def shadow_assignment(n_records: int, *, n_shadows: int, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Which shadow trains on which record, balanced per record (Carlini et al.'s scheme).

    Every record is IN for exactly ``n_in = round(keep * n_shadows)`` shadows, clipped to
    ``[1, n_shadows - 1]`` so that each record has at least one IN and one OUT shadow.

    Args:
        n_records: Records in the shadow pool.
        n_shadows: Number of shadow models, ``>= 2``.
        keep: Target fraction of shadows that train on each record, in (0, 1).
        rng: Source of the assignment.

    Returns:
        Boolean ``(n_shadows, n_records)``; ``[k, j]`` is True iff shadow ``k`` trains on record ``j``.

    >>> a = shadow_assignment(5, n_shadows=4, keep=0.5, rng=np.random.default_rng(0))
    >>> a.sum(axis=0).tolist()
    [2, 2, 2, 2, 2]
    """
    check_n_shadows(n_shadows)
    if not 0 < keep < 1:
        raise ValueError(f"keep must be in (0, 1), got keep={keep!r}")
    if isinstance(n_records, bool) or not isinstance(n_records, (int, np.integer)) or n_records < 1:
        raise ValueError(f"n_records must be a positive integer, got n_records={n_records!r}")
    n_in = int(min(max(round(keep * n_shadows), 1), n_shadows - 1))
    ranks = rng.random((n_shadows, int(n_records))).argsort(axis=0).argsort(axis=0)
    return ranks < n_in


def check_n_shadows(n_shadows: int) -> int:
    """``n_shadows`` as an int >= 2 (each record needs an IN and an OUT shadow)."""
    if isinstance(n_shadows, bool) or not isinstance(n_shadows, (int, np.integer)) or n_shadows < 2:
        raise ValueError(f"n_shadows must be an integer >= 2 (LiRA needs shadows that did and did not "
                         f"train on each record), got n_shadows={n_shadows!r}")
    return int(n_shadows)


def fit_gaussians(values: np.ndarray, mask: np.ndarray, *, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-record mean and standard deviation of ``values[mask]`` over shadows (axis 0).

    With ``fixed_variance`` every record gets the pooled within-record standard
    deviation; otherwise its own (ddof = 1), falling back to the pooled one for
    records with a single shadow value.

    Raises:
        ValueError: If some record has no shadow value in ``mask``.
    """
    v = np.asarray(values, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if v.shape != m.shape or v.ndim != 2:
        raise ValueError(f"values and mask must be (n_shadows, n_records) of equal shape, got {v.shape}, {m.shape}")
    count = m.sum(axis=0)
    if (count == 0).any():
        raise ValueError(f"{int((count == 0).sum())} record(s) have no shadow model to fit a Gaussian to")
    mean = np.where(m, v, 0.0).sum(axis=0) / count
    sq = np.where(m, (v - mean) ** 2, 0.0).sum(axis=0)
    dof = int((count - 1).sum())
    pooled = np.sqrt(sq.sum() / dof) if dof > 0 else MIN_STD
    if fixed_variance:
        std = np.full_like(mean, pooled)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.where(count >= 2, np.sqrt(sq / np.maximum(count - 1, 1)), pooled)
    return mean, np.maximum(std, MIN_STD)


def lira_offline(target_phi: np.ndarray, shadow_phi: np.ndarray, shadow_in: np.ndarray,
                 *, fixed_variance: bool = True) -> np.ndarray:
    """Offline LiRA score ``(phi - mu_out) / sigma_out`` per record (higher = member).

    Args:
        target_phi: ``phi`` of the attacked model, shape ``(n_records,)``.
        shadow_phi: ``phi`` of every shadow, shape ``(n_shadows, n_records)``.
        shadow_in: True where the shadow trained on the record; only False entries are used.
        fixed_variance: Pool the variance across records.
    """
    t = _check_target(target_phi, shadow_phi)
    mu, sd = fit_gaussians(shadow_phi, ~np.asarray(shadow_in, dtype=bool), fixed_variance=fixed_variance)
    return (t - mu) / sd


def lira_online(target_phi: np.ndarray, shadow_phi: np.ndarray, shadow_in: np.ndarray,
                *, fixed_variance: bool = True) -> np.ndarray:
    """Online LiRA score ``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)`` per record."""
    t = _check_target(target_phi, shadow_phi)
    inside = np.asarray(shadow_in, dtype=bool)
    mu_in, sd_in = fit_gaussians(shadow_phi, inside, fixed_variance=fixed_variance)
    mu_out, sd_out = fit_gaussians(shadow_phi, ~inside, fixed_variance=fixed_variance)
    return _gauss_logpdf(t, mu_in, sd_in) - _gauss_logpdf(t, mu_out, sd_out)


def _gauss_logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd)  # the -log(sqrt(2 pi)) cancels in the ratio


def _check_target(target_phi: np.ndarray, shadow_phi: np.ndarray) -> np.ndarray:
    t = np.asarray(target_phi, dtype=np.float64)
    s = np.asarray(shadow_phi)
    if t.ndim != 1 or s.ndim != 2 or s.shape[1] != t.shape[0]:
        raise ValueError(f"target_phi (n,) must match shadow_phi (n_shadows, n); got {t.shape} and {s.shape}")
    check_n_shadows(s.shape[0])
    return t
