"""Shared fixtures: tiny parameter sets that run in seconds."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from medhe import params  # noqa: E402


@pytest.fixture
def tabular_params() -> params.Params:
    """breast_cancer + MLP, 3 clients, 2 rounds: a whole federated run in about a second."""
    return params.load_dict({
        "data": {"dataset": "breast_cancer", "num_clients": 3},
        "model": {"name": "mlp", "hidden": 16},
        "train": {"rounds": 2, "local_epochs": 1, "batch_size": 16, "lr": 1e-2},
        "ckks": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40, 60]},
    })


@pytest.fixture
def tiny_text_params() -> params.Params:
    """A few Drugs.com reviews with MiniLM at a short sequence length."""
    return params.load_dict({
        "data": {"dataset": "drugscom", "max_train": 24, "max_test": 16, "num_clients": 2},
        "model": {"name": "minilm", "max_length": 24},
        "train": {"rounds": 1, "local_epochs": 1, "batch_size": 8, "lr": 1e-4},
    })
