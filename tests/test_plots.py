"""medhe.plots: figures drawn from results frames show what the frames hold."""

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from medhe import plots


def _comm():
    rows = []
    for group, n, mib in (("runs", 22_713_986, {"fedavg": 86.6, "medhe": 166.9}),
                          ("papersize", 66_955_010, {"fedavg": 255.4, "medhe": 356.0}),
                          ("noniid", 22_713_986, {"fedavg": 999.0})):
        for method, v in mib.items():
            for seed, d in ((42, -1.0), (43, 1.0)):  # two seeds: the bar is their mean
                rows.append({"group": group, "method": method, "seed": seed, "num_params": n,
                             "mib_up_per_client_round": v + d})
    return pd.DataFrame(rows)


def test_bytes_per_method_bars_are_means_per_model_size():
    fig = plots.bytes_per_method(_comm())
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["trials' model (22,713,986 parameters)", "paper-size update (66,955,010 parameters)"]
    heights = [[round(b.get_height(), 6) for b in c] for c in ax.containers]
    assert heights == [[86.6, 166.9], [255.4, 356.0]]  # means over seeds; the non-IID group is left out
    assert ax.get_yscale() == "log"


def test_bytes_per_method_without_trial_or_paper_rows_is_an_error():
    with pytest.raises(ValueError, match="papersize"):
        plots.bytes_per_method(_comm().query("group == 'noniid'"))


def test_mean_roc_reads_each_seed_at_fixed_fprs_and_averages():
    roc = pd.DataFrame({"method": "m", "attack": "a",
                        "seed": [1] * 5 + [2] * 4,
                        "fpr": [0.0, 0.0, 0.1, 0.5, 1.0] + [0.0, 0.1, 0.5, 1.0],
                        "tpr": [0.0, 0.2, 0.4, 0.9, 1.0] + [0.0, 0.6, 0.7, 1.0]})
    mean = plots.mean_roc(roc, [0.05, 0.1, 0.3, 0.99])
    # seed 1: nan (below its FPR resolution 0.1), 0.4, 0.4, 0.9; seed 2: nan, 0.6, 0.6, 0.7
    assert np.isnan(mean["tpr"].iloc[0])
    assert mean["tpr"].iloc[1:].to_numpy() == pytest.approx([0.5, 0.5, 0.8])
    assert mean["auc"].iloc[0] == pytest.approx((0.765 + 0.715) / 2)  # trapezoids, by hand
    assert mean["n_seeds"].eq(2).all()


def test_mean_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(7)
    rows, aucs, expect, grid = [], [], [], np.array([0.05, 0.1, 0.5])
    for seed in (1, 2):
        y = np.r_[np.ones(60), np.zeros(60)]
        score = np.round(rng.normal(size=120) + 0.6 * y, 1)  # rounded: many tied scores
        f, t, _ = metrics.roc_curve(y, score, drop_intermediate=False)
        aucs.append(metrics.roc_auc_score(y, score))
        expect.append([t[f <= g].max() for g in grid])
        rows += [{"method": "m", "seed": seed, "attack": "a", "fpr": a, "tpr": b} for a, b in zip(f, t)]
    mean = plots.mean_roc(pd.DataFrame(rows), grid)
    assert mean["auc"].iloc[0] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert mean["tpr"].to_numpy() == pytest.approx(np.mean(expect, axis=0))


def test_mia_roc_draws_chance_as_the_diagonal_on_log_log_axes():
    roc = pd.DataFrame({"method": "m", "seed": 1, "attack": "a", "fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.5, 1.0]})
    ax = plots.mia_roc(roc).axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    chance = [line for line in ax.get_lines() if line.get_label().startswith("chance")][0]
    x, y = chance.get_data()
    assert list(x) == list(y)
    with pytest.raises(ValueError, match="no attack 'lira_offline'"):
        plots.mia_roc(roc, attack="lira_offline")


def test_convergence_shows_accuracy_and_macro_f1_means_over_seeds():
    hist = pd.DataFrame({"method": "m", "seed": [1, 1, 2, 2], "round": [0, 1, 0, 1],
                         "accuracy": [0.5, 0.6, 0.7, 0.8], "f1_macro": [0.1, 0.2, 0.3, 0.4]})
    acc, f1 = plots.convergence(hist).axes
    assert acc.get_lines()[0].get_ydata() == pytest.approx([0.6, 0.7])
    assert f1.get_lines()[0].get_ydata() == pytest.approx([0.2, 0.3])
    assert acc.get_lines()[0].get_label() == "m (2 seeds)"


def test_epsilon_plot_names_delta_and_pairs_accountants_by_colour():
    eps = pd.DataFrame({"round": [1, 2, 1, 2], "noise_multiplier": [0.5, 0.5, 7.0, 7.0], "delta": 1e-5,
                        "epsilon_rdp": [3.0, 4.0, 0.5, 0.7], "epsilon_pld": [2.9, 3.9, 0.4, 0.6]})
    ax = plots.epsilon_vs_rounds(eps).axes[0]
    assert ax.get_ylabel() == "epsilon at delta = 1e-05"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["z = 0.5, RDP"].get_color() == lines["z = 0.5, PLD"].get_color() != lines["z = 7, RDP"].get_color()


def test_frontier_draws_the_majority_class_line_when_given():
    front = pd.DataFrame({"kind": "frontier", "method": "m", "bits": 8, "sparsity": [0.9, 0.99],
                          "bytes_up_round_per_param": [3.0, 1.5], "f1_macro": [0.4, 0.4]})
    summary = pd.DataFrame({"method": "fedavg", "metric": ["f1_macro", "majority_f1_macro", "majority_f1_macro"],
                            "mean": [0.7, 0.39, 0.41]})
    base = plots.majority_baseline(summary, "f1_macro")
    assert base == pytest.approx(0.40)
    assert plots.majority_baseline(summary, "accuracy") is None
    ax = plots.frontier(front, majority_f1=base).axes[0]
    line = [x for x in ax.get_lines() if x.get_label().startswith("majority class")][0]
    assert list(line.get_ydata()) == pytest.approx([0.40, 0.40])
    assert not [x for x in plots.frontier(front).axes[0].get_lines() if x.get_label().startswith("majority")]


def test_frontier_names_every_point_in_the_legend_by_colour_and_shape():
    front = pd.DataFrame({"kind": ["frontier"] * 4 + ["trial"] * 3, "method": ["a", "a", "b", "b", "t1", "t1", "t2"],
                          "bits": [8, 8, 4, 4, None, None, None], "sparsity": [0.9, 0.99, 0.9, 0.99, 0.9, 0.9, 0.9],
                          "bytes_up_round_per_param": [3.0, 1.5, 2.0, 1.0, 20.0, 22.0, 5.0],
                          "f1_macro": [0.4, 0.4, 0.41, 0.4, 0.7, 0.6, 0.4]})
    ax = plots.frontier(front).axes[0]
    lines = ax.get_lines()
    labels = [x.get_label() for x in lines if not x.get_label().startswith("_")]
    assert labels[:4] == ["a, 8-bit", "b, 4-bit", "s = 0.9", "s = 0.99"]
    assert labels[4:] == ["t1 (trials, mean)", "t2 (trials, mean)"]
    by_label = {x.get_label(): x for x in lines}
    t1 = by_label["t1 (trials, mean)"]
    assert (t1.get_xdata()[0], t1.get_ydata()[0]) == pytest.approx((21.0, 0.65))  # the mean of its trials
    group_a = [x for x in lines if x.get_color() == by_label["a, 8-bit"].get_color() and x.get_marker() not in (None, "None")]
    assert sorted(x.get_marker() for x in group_a) == sorted([by_label["s = 0.9"].get_marker(), by_label["s = 0.99"].get_marker()])
    assert by_label["s = 0.9"].get_marker() != by_label["s = 0.99"].get_marker()
    assert not {x.get_marker() for x in lines if "trials" in x.get_label()} & set(plots.SPARSITY_MARKERS)


def test_frontier_refuses_more_sparsity_levels_than_it_has_markers():
    n = len(plots.SPARSITY_MARKERS) + 1
    front = pd.DataFrame({"kind": "frontier", "method": "m", "bits": 8, "sparsity": [0.5 + 0.05 * i for i in range(n)],
                          "bytes_up_round_per_param": range(1, n + 1), "f1_macro": 0.4})
    with pytest.raises(ValueError, match="sparsity levels"):
        plots.frontier(front)

