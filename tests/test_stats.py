"""Statistics: golden values against scipy called directly, and laws."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from medhe import stats


def _trials():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        base = rng.normal(0.8, 0.02)
        rows.append({"method": "fedavg", "seed": seed, "accuracy": base, "f1_macro": base - 0.1})
        rows.append({"method": "medhe", "seed": seed, "accuracy": base - 0.01 + rng.normal(0, 0.005),
                     "f1_macro": base - 0.12})
    return pd.DataFrame(rows)


def test_summary_matches_numpy_and_scipy():
    df = _trials()
    s = stats.summarise(df, metrics=["accuracy"]).set_index("method")
    x = df[df.method == "medhe"]["accuracy"].to_numpy()
    assert s.loc["medhe", "std"] == pytest.approx(np.std(x, ddof=1))
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert (s.loc["medhe", "ci_low"], s.loc["medhe", "ci_high"]) == pytest.approx((lo, hi))
    assert s.loc["medhe", "ddof"] == 1


def test_paired_tests_match_scipy():
    df = _trials()
    t = stats.paired_tests(df, a="medhe", b="fedavg", metrics=["accuracy"]).iloc[0]
    x = df[df.method == "medhe"].sort_values("seed")["accuracy"]
    y = df[df.method == "fedavg"].sort_values("seed")["accuracy"]
    assert t["p_ttest"] == pytest.approx(sps.ttest_rel(x, y).pvalue)
    assert t["p_wilcoxon"] == pytest.approx(sps.wilcoxon(x, y).pvalue)
    assert t["n_pairs"] == 5 and t["mean_diff"] == pytest.approx((x.to_numpy() - y.to_numpy()).mean())


def test_constant_shift_is_significant_and_identical_runs_are_not_testable():
    df = _trials()
    shifted = df[df.method == "fedavg"].assign(method="better", accuracy=lambda d: d.accuracy + 0.05 + 0.001 * d.seed)
    both = pd.concat([df, shifted])
    t = stats.paired_tests(both, a="better", b="fedavg", metrics=["accuracy"]).iloc[0]
    assert t["p_ttest"] < 1e-6
    same = stats.paired_tests(pd.concat([df, df[df.method == "fedavg"].assign(method="copy")]),
                              a="copy", b="fedavg", metrics=["accuracy"]).iloc[0]
    assert np.isnan(same["p_ttest"]) and "zero" in same["note"]


def test_equal_nonzero_differences_leave_the_t_test_undefined_but_not_wilcoxon():
    df = _trials()
    shifted = df[df.method == "fedavg"].assign(method="plus", accuracy=lambda d: d.accuracy + 0.005)
    t = stats.paired_tests(pd.concat([df, shifted]), a="plus", b="fedavg", metrics=["accuracy"]).iloc[0]
    with warnings.catch_warnings():  # scipy itself says |t| huge or inf, p ~ 0 here
        warnings.simplefilter("ignore", RuntimeWarning)
        assert sps.ttest_rel(shifted.accuracy, df[df.method == "fedavg"].accuracy).pvalue < 1e-10
    assert np.isnan(t["p_ttest"]) and np.isnan(t["t"]) and "zero variance" in t["note"]
    assert t["p_wilcoxon"] == pytest.approx(0.0625)  # 5 positive differences, exact two-sided
    assert t["mean_diff"] == pytest.approx(0.005)


def test_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['auc'\]"):
        stats.summarise(_trials(), metrics=["auc"])


def _signflip_p(d: np.ndarray) -> tuple[int, float]:
    """Two-sided Wilcoxon p by enumerating every sign flip of the nonzero |d| (mid-ranks), written out here."""
    import itertools

    nz = d[d != 0]
    ranks = sps.rankdata(np.abs(nz))  # mid-ranks for ties
    observed = ranks[nz > 0].sum()
    mean = ranks.sum() / 2
    stats_ = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(nz))]
    extreme = sum(abs(w - mean) >= abs(observed - mean) - 1e-12 for w in stats_)
    return len(nz), min(1.0, extreme / len(stats_))


def test_wilcoxon_reports_the_nonzero_pairs_it_used_and_is_exact_under_ties():
    """The medhe_no_ef vs medhe case of the full profile: differences [0, 0, .026, .026, .164] leave 3
    nonzero pairs with a tie; the test runs on those 3, says so, and its p is the sign-flip p (0.25)."""
    diffs = np.array([0.0, 0.0, 0.026, 0.026, 0.164])
    base = np.array([0.80, 0.81, 0.79, 0.82, 0.70])
    df = pd.DataFrame([{"method": m, "seed": s, "accuracy": b + (d if m == "a" else 0.0)}
                       for m in ("a", "b") for s, (b, d) in enumerate(zip(base, diffs))])
    t = stats.paired_tests(df, a="a", b="b", metrics=["accuracy"]).iloc[0]
    assert t["n_pairs"] == 5 and t["n_wilcoxon"] == 3
    n, p = _signflip_p(df[df.method == "a"].accuracy.to_numpy() - df[df.method == "b"].accuracy.to_numpy())
    assert n == 3 and t["p_wilcoxon"] == pytest.approx(p) == pytest.approx(0.25)
    assert "zero differences dropped" in t["wilcoxon_method"] and "exact" in t["wilcoxon_method"]


def test_wilcoxon_with_ties_and_mixed_signs_equals_the_enumerated_sign_flip_p():
    d = np.array([0.026, -0.026, 0.164, 0.026, -0.03, 0.0, 0.05])
    df = pd.DataFrame([{"method": m, "seed": s, "accuracy": 0.5 + (x if m == "a" else 0.0)}
                       for m in ("a", "b") for s, x in enumerate(d)])
    t = stats.paired_tests(df, a="a", b="b", metrics=["accuracy"]).iloc[0]
    n, p = _signflip_p(df[df.method == "a"].accuracy.to_numpy() - df[df.method == "b"].accuracy.to_numpy())
    assert t["n_wilcoxon"] == n == 6
    assert t["p_wilcoxon"] == pytest.approx(p)
