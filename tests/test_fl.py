"""Federated runs end to end: FedAvg on tabular and text data, determinism, records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medhe import fl
from medhe.fl import methods


def test_fedavg_breast_cancer_learns_and_writes_records(tabular_params, tmp_path):
    res = fl.run(tabular_params, method="fedavg", seed=3, out_dir=tmp_path, progress=False)
    final = res.final
    assert final["round"] == tabular_params.train.rounds
    assert final["accuracy"] > final["majority_accuracy"] + 0.2  # real learning, not the base rate
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"accuracy", "f1_binary", "f1_macro", "majority_accuracy", "bytes_up_per_client"} <= set(metrics)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["seed"] == 3 and run["params"]["train"]["rounds"] == 2
    assert {"local_training", "evaluate"} <= set(run["time_per_phase_s"])
    assert run["environment"]["packages"]["torch"].startswith("2.13.0")
    assert (tmp_path / "history.csv").read_text().count("\n") == tabular_params.train.rounds + 2


def test_fedavg_bytes_are_the_serialised_dense_update(tabular_params):
    res = fl.run(tabular_params, method="fedavg", seed=0, progress=False)
    n = res.record["num_params"]
    assert res.final["bytes_up_per_client"] == 4 * n  # float32 message, measured by len()
    assert res.final["bytes_down_per_client"] == 4 * n


def test_same_seed_same_history_other_seed_differs(tabular_params):
    a = fl.run(tabular_params, method="fedavg", seed=5, progress=False)
    b = fl.run(tabular_params, method="fedavg", seed=5, progress=False)
    c = fl.run(tabular_params, method="fedavg", seed=6, progress=False)
    keys = ("accuracy", "f1_macro", "loss", "train_loss")
    assert [[h.get(k) for k in keys] for h in a.history] == [[h.get(k) for k in keys] for h in b.history]
    assert np.array_equal(a.final_weights, b.final_weights)
    assert not np.array_equal(a.final_weights, c.final_weights)


def test_unknown_method_lists_known_ones(tabular_params):
    with pytest.raises(ValueError, match="unknown method 'fedprox'.*fedavg"):
        fl.run(tabular_params, method="fedprox", progress=False)


def test_model_data_mismatch_is_an_error(tabular_params):
    import dataclasses

    p = dataclasses.replace(tabular_params, model=dataclasses.replace(tabular_params.model, name="minilm"))
    with pytest.raises(ValueError, match="does not fit the tabular data set"):
        fl.run(p, method="fedavg", progress=False)


ABLATIONS = {  # ablation: (the method it ablates, exactly the flags that differ)
    "medhe_no_ef": ("medhe", {"error_feedback"}),
    "medhe_no_adaptive": ("medhe", {"adaptive"}),
    "medhe_no_packing": ("medhe", {"packing"}),
    "medhe_no_he": ("medhe", {"encryption", "packing"}),
    "medhe_no_dp": ("medhe", {"noise", "clip_mode"}),
    "medhe_no_dp_c1": ("medhe_no_dp", {"clip_mode"}),
    "medhe_no_dp_no_ef": ("medhe_no_dp", {"error_feedback"}),
    "medhe_no_dp_no_adaptive": ("medhe_no_dp", {"adaptive"}),
    "medhe_no_dp_no_packing": ("medhe_no_dp", {"packing"}),
}


def test_method_specs_are_compositions():
    assert {n for n in methods.METHODS if n.startswith("medhe_no_")} == set(ABLATIONS)
    for name, (base, flags) in ABLATIONS.items():
        spec, ref = methods.get(name), methods.get(base)
        diff = {k for k in ref.__dict__ if getattr(spec, k) != getattr(ref, k)} - {"name"}
        assert diff == flags, (name, diff)


@pytest.mark.slow
def test_tiny_text_run_with_minilm(tiny_text_params, tmp_path):
    res = fl.run(tiny_text_params, method="fedavg", seed=0, out_dir=tmp_path, progress=False)
    assert res.record["num_params"] == 22_713_986
    assert res.final["bytes_up_per_client"] == 4 * 22_713_986
    assert 0.0 <= res.final["accuracy"] <= 1.0 and np.isfinite(res.final["loss"])
    assert (tmp_path / "run.json").exists()
