"""The privacy-utility frontier: points -> runs -> table -> figure, on the tabular task."""

from __future__ import annotations

import math

import pytest

from medhe import fl, params, plots, privacy, privacy_utility


def test_points_plan_their_method_and_noise(tabular_params):
    P = tabular_params
    assert privacy_utility.plan(P, "none").method == "medhe_no_dp"
    client = privacy_utility.plan(P, "client-eps1")
    z = privacy.noise_for_epsilon(target_epsilon=1.0, sampling_rate=1.0, rounds=P.train.rounds, delta=P.dp.delta)
    assert client.method == "medhe_no_packing" and client.overrides == {"dp.noise_multiplier": z}
    assert privacy.epsilon(noise_multiplier=z, sampling_rate=1.0, rounds=P.train.rounds, delta=P.dp.delta) <= 1.0
    record = privacy_utility.plan(P, "record-eps8")
    assert record.method == "medhe_dpsgd" and record.overrides["dp_sgd.target_epsilon"] == 8.0
    for bad in ("client", "record-z1", "eps1", "client-eps-1"):
        with pytest.raises(ValueError, match="privacy point must match"):
            privacy_utility.plan(P, bad)


def test_table_from_runs_carries_measured_epsilon_and_plots(tabular_params, tmp_path):
    raw = tabular_params.to_dict()
    points = ["none", "client-z0.5", "record-eps8"]
    for point in points:
        plan = privacy_utility.plan(tabular_params, point)
        P = params.load_dict(params.with_overrides(raw, plan.overrides))
        fl.run(P, method=plan.method, seed=0, progress=False,
               out_dir=privacy_utility.run_dir(P.profile, point, seed=0, root=tmp_path))
    table = privacy_utility.utility_table(tabular_params.profile, points=points, seeds=[0], root=tmp_path)
    by = table.set_index("point")
    assert list(by["kind"]) == ["none", "client", "record"]
    assert math.isinf(by.loc["none", "epsilon"])
    z_eps = privacy.epsilon(noise_multiplier=0.5, sampling_rate=1.0, rounds=tabular_params.train.rounds,
                            delta=tabular_params.dp.delta)
    assert by.loc["client-z0.5", "epsilon"] == pytest.approx(z_eps, rel=1e-9)
    assert by.loc["client-z0.5", "noise_to_signal_mean"] > 0
    assert 7.5 < by.loc["record-eps8", "epsilon"] <= 8.0
    assert math.isnan(by.loc["record-eps8", "noise_to_signal_mean"])  # no client-level noise there
    fig = plots.privacy_utility(table)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("epsilon <= 1" in s for s in labels) and "majority class" in labels
    with pytest.raises(FileNotFoundError, match="record-eps3_s0"):
        privacy_utility.utility_table(tabular_params.profile, points=["record-eps3"], seeds=[0], root=tmp_path)
