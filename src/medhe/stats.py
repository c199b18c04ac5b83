"""Statistics over trials: mean, std, 95 % CI, paired t-test and Wilcoxon signed-rank.

Inputs are tidy frames with one row per (method, seed) and one column per metric.
``std`` is the sample standard deviation (``ddof=1``, as "mean +- std over 5 trials"
is usually meant); the 95 % CI is Student-t based: mean +- t_{0.975, n-1} * std / sqrt(n).

>>> import pandas as pd
>>> df = pd.DataFrame({"method": ["a"] * 3, "seed": [1, 2, 3], "accuracy": [0.8, 0.9, 1.0]})
>>> row = summarise(df, metrics=["accuracy"]).iloc[0]
>>> [round(float(row[k]), 3) for k in ("mean", "std", "ci_high")]
[0.9, 0.1, 1.148]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

DDOF = 1
MAX_EXACT_WILCOXON = 20  # nonzero pairs up to which the Wilcoxon p enumerates all 2^m sign flips


def _check_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"trial table lacks column(s) {missing}; it has {list(df.columns)}")


def summarise(trials: pd.DataFrame, *, metrics: Sequence[str], by: str = "method",
              confidence: float = 0.95) -> pd.DataFrame:
    """Per group and metric: n, mean, std (ddof=1), t-based CI, min, max."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    _check_columns(trials, [by, *metrics])
    rows = []
    for key, group in trials.groupby(by, sort=False):
        for metric in metrics:
            x = group[metric].dropna().to_numpy(dtype=float)
            n = int(x.size)
            mean = float(np.mean(x)) if n else float("nan")
            std = float(np.std(x, ddof=DDOF)) if n > 1 else float("nan")
            half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
            rows.append({by: key, "metric": metric, "n": n, "mean": mean, "std": std, "ddof": DDOF,
                         "ci_low": mean - half, "ci_high": mean + half, "confidence": confidence,
                         "min": float(np.min(x)) if n else float("nan"),
                         "max": float(np.max(x)) if n else float("nan")})
    return pd.DataFrame(rows)


def paired_tests(trials: pd.DataFrame, *, a: str, b: str, metrics: Sequence[str], by: str = "method",
                 pair_on: str = "seed") -> pd.DataFrame:
    """Paired comparison of methods ``a`` and ``b`` over the seeds both ran.

    Per metric: number of pairs, mean difference (a - b), the paired t-test (two-sided,
    ``scipy.stats.ttest_rel``) as the paper reports it, and the Wilcoxon signed-rank test.

    Wilcoxon: pairs with a zero difference are dropped (Wilcoxon's own rule,
    ``zero_method="wilcox"``), and ``n_wilcoxon`` says how many nonzero pairs the test used
    (with 5 pairs, all nonzero, the smallest possible p is 0.0625; with 3 it is 0.25). Tied
    |differences| get mid-ranks, and the two-sided p is the exact sign-flip permutation
    p-value over all 2^m sign assignments of the m nonzero pairs (valid with ties, unlike the
    tabulated exact distribution); above ``MAX_EXACT_WILCOXON`` pairs the normal approximation
    with tie correction. ``wilcoxon_method`` names which. Tests that cannot be
    computed (fewer than 2 pairs, all differences zero) give NaN with a note. When every
    pair differs by the same nonzero amount the differences have zero variance, so the
    t statistic is undefined (scipy returns +-inf and p = 0); it is NaN with a note, and the
    Wilcoxon test, which needs only the signs and ranks, is still computed.
    """
    _check_columns(trials, [by, pair_on, *metrics])
    left = trials[trials[by] == a].set_index(pair_on)
    right = trials[trials[by] == b].set_index(pair_on)
    common = sorted(set(left.index) & set(right.index))
    rows = []
    for metric in metrics:
        x = left.loc[common, metric].to_numpy(dtype=float)
        y = right.loc[common, metric].to_numpy(dtype=float)
        d = x - y
        row = {"a": a, "b": b, "metric": metric, "n_pairs": len(common), "mean_a": float(np.mean(x)) if len(x) else np.nan,
               "mean_b": float(np.mean(y)) if len(y) else np.nan, "mean_diff": float(np.mean(d)) if len(d) else np.nan,
               "t": np.nan, "p_ttest": np.nan, "w": np.nan, "p_wilcoxon": np.nan,
               "n_wilcoxon": int(np.count_nonzero(d)), "wilcoxon_method": "", "note": ""}
        if len(common) < 2:
            row["note"] = "fewer than 2 paired trials"
        elif np.all(d == 0):
            row["note"] = "all paired differences are zero"
        else:
            if np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d)))):
                row["note"] = f"all paired differences equal {d[0]:+.6g}: zero variance, t-test undefined"
            else:
                t = sps.ttest_rel(x, y)
                row.update(t=float(t.statistic), p_ttest=float(t.pvalue))
            exact = row["n_wilcoxon"] <= MAX_EXACT_WILCOXON
            method = sps.PermutationMethod(n_resamples=np.inf) if exact else "approx"
            w = sps.wilcoxon(d, zero_method="wilcox", method=method)
            row.update(w=float(w.statistic), p_wilcoxon=float(w.pvalue),
                       wilcoxon_method=("exact sign-flip permutation, mid-ranks" if exact else
                                        "normal approximation, tie correction") + ", zero differences dropped")
        rows.append(row)
    return pd.DataFrame(rows)


def paired_tost(diffs: Sequence[float], *, margin: float, alpha: float = 0.05, confidence: float = 0.95) -> dict:
    """Equivalence of two paired methods by two one-sided t-tests (TOST, Schuirmann 1987).

    H0: |mean difference| >= ``margin``; rejected (the methods are equivalent within the margin)
    when both one-sided p-values are below ``alpha``, i.e. when the (1 - 2 alpha) t-interval of
    the mean difference lies inside (-margin, margin). Also returns the two-sided ``confidence``
    t-interval. Differences with zero variance are decided exactly (p = 0 or 1).

    >>> r = paired_tost([0.001, -0.002, 0.0, 0.002, -0.001], margin=0.01)
    >>> r["equivalent"], round(r["p_tost"], 5), round(r["ci_high"], 4)
    (True, 7e-05, 0.002)
    >>> paired_tost([-0.10, -0.12, -0.14], margin=0.01)["equivalent"]
    False
    """
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be finite and > 0, got {margin!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"need >= 2 finite paired differences, got {d.tolist()!r}")
    n, mean = int(d.size), float(np.mean(d))
    sd = float(np.std(d, ddof=DDOF))
    if sd <= 1e-12 * max(1.0, float(np.max(np.abs(d)))):
        inside = abs(mean) < margin
        p_lower = p_upper = 0.0 if inside else 1.0
        lo = hi = mean
    else:
        se = sd / np.sqrt(n)
        p_lower = float(sps.t.sf((mean + margin) / se, n - 1))  # H0: mean <= -margin
        p_upper = float(sps.t.cdf((mean - margin) / se, n - 1))  # H0: mean >= +margin
        half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * se)
        lo, hi = mean - half, mean + half
    p = max(p_lower, p_upper)
    return {"n_pairs": n, "mean_diff": mean, "sd_diff": sd, "margin": float(margin), "ci_low": lo, "ci_high": hi,
            "confidence": confidence, "p_lower": p_lower, "p_upper": p_upper, "p_tost": p, "alpha": alpha,
            "equivalent": bool(p < alpha)}
