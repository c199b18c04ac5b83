"""train.device: auto picks CUDA only where torch sees it; unknown names fail early; runs record it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from medhe import fl, model, params
from medhe.params import ModelParams


def test_auto_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert model.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert model.resolve_device("auto") == torch.device("cuda")


def test_cpu_is_cpu_and_default_is_auto():
    assert model.resolve_device("cpu") == torch.device("cpu")
    assert params.TrainParams().device == "auto"


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CPU", "", "tpu", None])
def test_unknown_device_is_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match=r"train\.device must be one of .*auto.*cpu.*cuda"):
        params.load_dict({"train": {"device": bad}})
    with pytest.raises(ValueError, match="train.device must be one of"):
        model.resolve_device(bad)


def test_cuda_without_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device.*use train.device=auto or cpu"):
        model.resolve_device("cuda:0")


def test_build_places_the_module_and_flat_vectors_stay_on_the_cpu():
    b = model.build(ModelParams(name="mlp", hidden=4), seed=0, in_features=3, device="cpu")
    assert model.module_device(b.module) == torch.device("cpu")
    w = model.get_flat(b.module)
    assert isinstance(w, np.ndarray) and w.dtype == np.float32


def test_run_records_the_device_and_auto_equals_cpu_here(tabular_params):
    if torch.cuda.is_available():
        pytest.skip("auto would pick CUDA here; the CPU equality below is a CPU-machine check")
    auto = fl.run(tabular_params, method="fedavg", seed=3, progress=False)
    cpu_p = dataclasses.replace(tabular_params, train=dataclasses.replace(tabular_params.train, device="cpu"))
    cpu = fl.run(cpu_p, method="fedavg", seed=3, progress=False)
    assert auto.record["device"] == cpu.record["device"] == "cpu"
    assert auto.record["params"]["train"]["device"] == "auto"
    np.testing.assert_array_equal(auto.final_weights, cpu.final_weights)
