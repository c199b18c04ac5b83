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


ABLATIONS = {  # variant: (the method it varies, flag by flag, with the value it takes)
    "medhe_no_ef": ("medhe", {"error_feedback": False}),
    "medhe_no_adaptive": ("medhe", {"adaptive": False}),
    "medhe_no_packing": ("medhe", {"packing": False}),
    "medhe_no_he": ("medhe", {"encryption": "none", "packing": False}),  # packing needs CKKS
    "medhe_no_dp": ("medhe", {"noise": False, "clip_mode": "adaptive"}),
    "medhe_no_dp_c1": ("medhe_no_dp", {"clip_mode": "fixed"}),
    "medhe_no_dp_no_ef": ("medhe_no_dp", {"error_feedback": False}),
    "medhe_no_dp_no_adaptive": ("medhe_no_dp", {"adaptive": False}),
    "medhe_no_dp_no_packing": ("medhe_no_dp", {"packing": False}),
    "medhe_bfv": ("medhe", {"encryption": "bfv", "packing": False}),
    "medhe_bfv_no_dp": ("medhe_no_dp", {"encryption": "bfv", "packing": False}),
    "medhe_bfv_skellam": ("medhe_bfv", {"dp_mechanism": "skellam"}),
    "medhe_global": ("medhe", {"adaptive": False, "alignment": "global"}),
    "medhe_global_no_dp": ("medhe_no_dp", {"adaptive": False, "alignment": "global"}),
    "medhe_bfv_global_no_dp": ("medhe_global_no_dp", {"encryption": "bfv", "packing": False}),
    "medhe_dpsgd": ("medhe", {"noise": False, "record_dp": True}),
}


def test_medhe_is_every_part_switched_on():
    medhe = methods.get("medhe")
    assert (medhe.sparsify, medhe.error_feedback, medhe.adaptive, medhe.clip, medhe.noise, medhe.packing) == (True,) * 6
    assert medhe.encryption == "ckks" and medhe.alignment is None and medhe.dp


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_variant_differs_from_its_base_in_exactly_the_flags_it_names(name):
    base, flags = ABLATIONS[name]
    ref, spec = methods.get(base), methods.get(name)
    diff = {k: getattr(spec, k) for k in ref.__dict__ if k != "name" and getattr(spec, k) != getattr(ref, k)}
    assert diff == flags


def test_every_medhe_variant_is_listed_above():
    assert {n for n in methods.METHODS if n.startswith("medhe_")} == set(ABLATIONS)


@pytest.mark.parametrize("kwargs, message", [
    ({"encryption": "paillier"}, "encryption must be 'none', 'ckks' or 'bfv', got 'paillier'"),
    ({"encryption": "bfv"}, "BFV quantises against the clip bound, so it needs clip=True"),
    ({"packing": True, "clip": True}, "packing needs encryption='ckks'"),
    ({"packing": True, "encryption": "ckks"}, "packing quantises against the clip bound"),
    ({"error_feedback": True}, "error_feedback/adaptive need sparsify=True"),
    ({"adaptive": True}, "error_feedback/adaptive need sparsify=True"),
    ({"noise": True}, "Gaussian noise without clipping has no sensitivity bound"),
    ({"alignment": "sparse"}, "alignment must be None, 'union', 'dense', 'own' or 'global', got 'sparse'"),
    ({"alignment": "own", "encryption": "ckks"}, "alignment 'own' .* cannot be summed slot by slot"),
    ({"alignment": "own", "noise": True, "clip": True}, "alignment 'own' with noise=True puts each client's noise"),
])
def test_method_spec_refuses_inconsistent_compositions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        methods.MethodSpec("bad", **kwargs)


def test_method_spec_accepts_the_boundary_cases():
    assert methods.MethodSpec("x", encryption="bfv", clip=True).encryption == "bfv"
    assert methods.MethodSpec("x", alignment="own").alignment == "own"
    assert methods.MethodSpec("x", noise=True, clip=True).dp


@pytest.mark.slow
def test_tiny_text_run_with_minilm(tiny_text_params, tmp_path):
    res = fl.run(tiny_text_params, method="fedavg", seed=0, out_dir=tmp_path, progress=False)
    assert res.record["num_params"] == 22_713_986
    assert res.final["bytes_up_per_client"] == 4 * 22_713_986
    assert 0.0 <= res.final["accuracy"] <= 1.0 and np.isfinite(res.final["loss"])
    assert (tmp_path / "run.json").exists()
