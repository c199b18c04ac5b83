"""Shared fixtures: tiny parameter sets that run in seconds."""

from __future__ import annotations

import os

import pytest
from pathlib import Path
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from medhe import params  # noqa: E402

# Hypothesis: "ci" (the default; derandomised, so a run is reproducible and a failure replays) and
# "dev" (random, more examples, to hunt for new counterexamples: HYPOTHESIS_PROFILE=dev).
# Counterexamples found are pinned next to their test with @example.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=500, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _seeds(spec: str) -> list[int]:
    """``"all"`` -> 0..19; ``"3"`` -> [3]; ``"0-4"`` -> 0..4; ``"1,5"`` -> [1, 5]."""
    if spec == "all":
        return list(range(20))
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``global_random_seed`` (as in scikit-learn): statistical tests run over several seeds.

    Default seeds 0, 1, 2; ``MEDHE_TEST_SEEDS=all`` runs 0..19 (every band below was checked there).
    """
    if "global_random_seed" in metafunc.fixturenames:
        metafunc.parametrize("global_random_seed", _seeds(os.environ.get("MEDHE_TEST_SEEDS", "0-2")))


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


# Tests that reach for slow fixtures are slow themselves (`make test-fast` leaves them out); marked here
# so that the files which own them need not change.
SLOW_FIXTURES = {"paper_statement"}  # tests/test_privacy.py: PLD accounting at sigma = 0.12, ~13 s


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.path.name.startswith("test_flower"):  # the Flower engine's tests: -m "not flower" leaves them out
            item.add_marker(pytest.mark.flower)


# `make test RECORD=1` sets MEDHE_TEST_TIMES to a JSON path: the suite's wall time and, of it, the seconds
# spent in the Flower engine's tests (set-up of their module fixtures included), written when all pass.
_TIMES = {"start": 0.0, "flower": 0.0}


def pytest_sessionstart(session) -> None:
    import time

    _TIMES["start"] = time.monotonic()


def pytest_runtest_logreport(report) -> None:
    if "flower" in report.keywords:
        _TIMES["flower"] += report.duration


def pytest_sessionfinish(session, exitstatus) -> None:
    import json
    import os
    import time

    out = os.environ.get("MEDHE_TEST_TIMES")
    if not out or exitstatus != 0:
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wall = time.monotonic() - _TIMES["start"]
    record = {"seconds": round(wall), "flower_s": round(_TIMES["flower"]), "cpus": cpus}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
