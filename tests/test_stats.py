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
