"""Tests for medhe.privacy: golden epsilons vs dp_accounting, accounting laws, mechanism laws."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from dp_accounting import pld, rdp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medhe import rng as medhe_rng
from medhe.privacy import (
    CAVEATS,
    ClientLevelAccountant,
    add_gaussian_noise,
    clip_l2,
    epsilon,
    noise_for_epsilon,
    noise_std_per_client,
    privacy_statement,
)

GOLDEN = json.loads((Path(__file__).parent / "golden" / "privacy.json").read_text())
DELTA = 1e-5
# The paper's stated DP configuration (PAPER.md, step 4): sigma 0.12, clip 1, T = 3, all 5 clients.
PAPER = dict(noise_multiplier=0.12, clip_norm=1.0, num_clients=5, rounds=3, delta=1e-5)


def _direct_epsilon(z: float, q: float, rounds: int, delta: float, accountant: str) -> float:
    """Independent call into dp_accounting, written out here rather than via medhe."""
    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(z)
    if q < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(sampling_probability=q, event=event)
    acc = rdp.RdpAccountant() if accountant == "rdp" else pld.PLDAccountant()
    if rounds <= 5:  # repeated compose: a different code path from medhe's SelfComposedDpEvent
        for _ in range(rounds):
            acc.compose(event)
    else:  # repeated compose of 100 subsampled PLDs takes about a minute; self-compose instead
        acc.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return acc.get_epsilon(delta)


# --------------------------------------------------------------------------- golden


@pytest.mark.golden
@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: f"z{c['noise_multiplier']}-q{c['sampling_rate']}-T{c['rounds']}")
def test_golden_epsilon(case: dict, accountant: str) -> None:
    # Prepare
    z, q, T, delta = case["noise_multiplier"], case["sampling_rate"], case["rounds"], case["delta"]
    # Execute
    ours = epsilon(noise_multiplier=z, sampling_rate=q, rounds=T, delta=delta, accountant=accountant)
    # Assert: equal to a direct, repeated-compose dp_accounting call and to the pinned value
    assert ours == pytest.approx(_direct_epsilon(z, q, T, delta, accountant), rel=1e-9)
    assert ours == pytest.approx(case[f"epsilon_{accountant}"], rel=1e-9)


def test_pld_matches_analytic_gaussian_when_all_clients_participate() -> None:
    """q = 1: T Gaussian rounds of std z compose to one Gaussian of std z / sqrt(T), whose
    exact epsilon (Balle & Wang 2018) PLD (pessimistic) meets from above and RDP bounds."""
    z, T = 1.1, 3
    exact = dp_accounting.get_epsilon_gaussian(z / math.sqrt(T), DELTA)
    ours_pld = epsilon(noise_multiplier=z, sampling_rate=1.0, rounds=T, delta=DELTA, accountant="pld")
    ours_rdp = epsilon(noise_multiplier=z, sampling_rate=1.0, rounds=T, delta=DELTA, accountant="rdp")
    assert exact - 1e-6 <= ours_pld <= exact + 1e-3
    assert ours_pld < ours_rdp


# --------------------------------------------------------------------------- accounting laws


@settings(max_examples=40, deadline=None)
@given(z=st.floats(0.3, 20.0), T=st.integers(1, 49), dz=st.floats(1.01, 3.0))
def test_epsilon_grows_with_rounds_and_shrinks_with_noise(z: float, T: int, dz: float) -> None:
    def eps(z_: float, T_: int) -> float:
        return epsilon(noise_multiplier=z_, sampling_rate=1.0, rounds=T_, delta=DELTA)

    assert eps(z, T + 1) > eps(z, T)
    assert eps(z * dz, T) < eps(z, T)


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_epsilon_monotone_with_subsampling(accountant: str) -> None:
    e = [epsilon(noise_multiplier=1.0, sampling_rate=0.1, rounds=T, delta=DELTA, accountant=accountant) for T in (10, 30)]
    assert e[0] < e[1]
    assert epsilon(noise_multiplier=2.0, sampling_rate=0.1, rounds=30, delta=DELTA, accountant=accountant) < e[1]
    assert epsilon(noise_multiplier=1.0, sampling_rate=0.05, rounds=30, delta=DELTA, accountant=accountant) < e[1]


@pytest.mark.parametrize(("z", "q", "T"), [(1.0, 1.0, 1), (1.0, 1.0, 3), (2.0, 1.0, 3), (5.0, 1.0, 10), (1.0, 0.1, 100)])
def test_pld_is_tighter_than_rdp(z: float, q: float, T: int) -> None:
    kw = dict(noise_multiplier=z, sampling_rate=q, rounds=T, delta=DELTA)
    assert epsilon(**kw, accountant="pld") <= epsilon(**kw, accountant="rdp")


def test_zero_noise_is_infinite_epsilon() -> None:
    for acc in ("rdp", "pld"):
        assert epsilon(noise_multiplier=0.0, sampling_rate=1.0, rounds=3, delta=DELTA, accountant=acc) == math.inf


@settings(max_examples=30, deadline=None)
@given(target=st.floats(0.5, 10.0), T=st.integers(1, 50))
def test_noise_for_epsilon_never_overshoots(target: float, T: int) -> None:
    tol = 1e-4
    z = noise_for_epsilon(target_epsilon=target, sampling_rate=1.0, rounds=T, delta=DELTA, tol=tol)
    assert epsilon(noise_multiplier=z, sampling_rate=1.0, rounds=T, delta=DELTA) <= target
    # and it is (nearly) the smallest such z: a little less noise overshoots
    assert epsilon(noise_multiplier=z - tol, sampling_rate=1.0, rounds=T, delta=DELTA) > target


@pytest.mark.parametrize(("accountant", "q", "T"), [("pld", 1.0, 3), ("rdp", 0.2, 20)])
def test_noise_for_epsilon_never_overshoots_other_accountants(accountant: str, q: float, T: int) -> None:
    z = noise_for_epsilon(target_epsilon=2.0, sampling_rate=q, rounds=T, delta=DELTA, accountant=accountant, tol=1e-3)
    assert epsilon(noise_multiplier=z, sampling_rate=q, rounds=T, delta=DELTA, accountant=accountant) <= 2.0


# --------------------------------------------------------------------------- paper config


@pytest.fixture(scope="module")
def paper_statement() -> dict:
    return privacy_statement(**PAPER)


def test_paper_config_epsilon_is_far_above_one(paper_statement: dict) -> None:
    """The stated sigma = 0.12 (C = 1, T = 3, q = 1, delta = 1e-5): both accountants give an
    epsilon far above 1; the measured values are reported, not compared with the paper here."""
    assert paper_statement["epsilon_rdp"] > 10
    assert paper_statement["epsilon_pld"] > 10
    assert paper_statement["epsilon_pld"] <= paper_statement["epsilon_rdp"]


def test_privacy_statement_is_complete_and_serialisable(paper_statement: dict) -> None:
    s = paper_statement
    assert json.loads(json.dumps(s)) == s
    assert s["neighbouring_relation"] == "add_or_remove_one_client"
    assert s["sampling_rate"] == 1.0 and "no amplification" in s["sampling"]
    assert s["noise_std_of_sum"] == pytest.approx(0.12)
    assert s["noise_std_per_client"] == pytest.approx(0.12 / math.sqrt(5))
    assert s["dp_accounting_version"] == dp_accounting_version()
    assert set(s["accountants"]) == {"rdp", "pld"}
    text = " ".join(s["caveats"]).lower()
    for needle in ("top-k index", "(1 - s)", "residual", "distributed", "pcg64", "seed is secret"):
        assert needle in text
    assert s["caveats"] == list(CAVEATS)


def dp_accounting_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("dp-accounting")


# --------------------------------------------------------------------------- stateful accountant


def test_accountant_history_and_round_trip() -> None:
    acc = ClientLevelAccountant(noise_multiplier=1.1, sampling_rate=1.0, delta=DELTA)
    assert acc.epsilon() == 0.0
    for _ in range(3):
        acc.step()
    assert acc.history == [epsilon(noise_multiplier=1.1, sampling_rate=1.0, rounds=T, delta=DELTA) for T in (1, 2, 3)]
    assert acc.history == sorted(acc.history)
    assert acc.epsilon(accountant="pld") < acc.epsilon()
    state = json.loads(json.dumps(acc.state_dict()))
    other = ClientLevelAccountant(noise_multiplier=5.0, sampling_rate=0.5, delta=1e-3)
    other.load_state_dict(state)
    assert other.state_dict() == acc.state_dict()
    assert other.epsilon() == acc.epsilon()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda s: s.pop("history"), "keys"),
        (lambda s: s.update(history=[1.0]), "history has 1"),
        (lambda s: s.update(noise_multiplier=-1.0), "-1.0"),
        (lambda s: s.update(mechanism="other"), "other"),
        (lambda s: s.update(accountant="gdp"), "gdp"),
    ],
)
def test_accountant_rejects_bad_state(mutate, match: str) -> None:
    acc = ClientLevelAccountant(noise_multiplier=1.0, sampling_rate=1.0, delta=DELTA)
    acc.step()
    acc.step()
    state = acc.state_dict()
    mutate(state)
    with pytest.raises(ValueError, match=match):
        ClientLevelAccountant(noise_multiplier=1.0, sampling_rate=1.0, delta=DELTA).load_state_dict(state)


# --------------------------------------------------------------------------- mechanism laws


@settings(max_examples=100, deadline=None)
@given(
    x=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        st.integers(1, 50),
        elements=st.floats(-1e6, 1e6, allow_nan=False, width=32),
    ),
    c=st.floats(1e-3, 1e3),
)
def test_clipping_never_increases_norm(x: np.ndarray, c: float) -> None:
    y, before = clip_l2(x, max_norm=c)
    after = float(np.linalg.norm(y.astype(np.float64)))
    assert y.dtype == x.dtype and y.shape == x.shape
    assert before == pytest.approx(float(np.linalg.norm(x.astype(np.float64))))
    assert after <= c
    assert after <= before
    if before <= c:
        np.testing.assert_array_equal(y, x)


def test_distributed_noise_sums_to_z_times_c() -> None:
    # Prepare: n clients each add their share of noise to a zero update
    z, c, n, d, seed = 1.3, 0.7, 5, 200_000, 7
    std = noise_std_per_client(noise_multiplier=z, sensitivity=c, num_clients=n)
    # Execute
    total = np.zeros(d, dtype=np.float64)
    for client in range(n):
        share = add_gaussian_noise(np.zeros(d, np.float32), std=std, rng=medhe_rng.generator(seed, "dp-noise", client, 0))
        assert np.std(share) == pytest.approx(std, rel=0.02)
        total += share
    # Assert
    assert np.std(total) == pytest.approx(z * c, rel=0.02)
    assert abs(np.mean(total)) < 5 * z * c / math.sqrt(d)


def test_add_gaussian_noise_dtype_and_rng_discipline() -> None:
    x = np.arange(10, dtype=np.float32)
    global_state = np.random.get_state()[1].copy()
    a = add_gaussian_noise(x, std=0.5, rng=medhe_rng.generator(1, "dp-noise", 0))
    b = add_gaussian_noise(x, std=0.5, rng=medhe_rng.generator(1, "dp-noise", 0))
    c = add_gaussian_noise(x, std=0.5, rng=medhe_rng.generator(1, "dp-noise", 1))
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(x, np.arange(10, dtype=np.float32))  # input untouched
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # global RNG untouched
    assert add_gaussian_noise(x.astype(np.float64), std=0.5, rng=np.random.default_rng(0)).dtype == np.float64
    np.testing.assert_array_equal(add_gaussian_noise(x, std=0.0, rng=np.random.default_rng(0)), x)


# --------------------------------------------------------------------------- bad inputs


_EPS_OK = dict(noise_multiplier=1.0, sampling_rate=1.0, rounds=3, delta=DELTA)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (dict(noise_multiplier=-0.5), r"noise_multiplier.*-0\.5"),
        (dict(noise_multiplier=math.nan), r"noise_multiplier.*nan"),
        (dict(delta=1.0), r"delta.*1\.0"),
        (dict(delta=0.0), r"delta.*0\.0"),
        (dict(sampling_rate=0.0), r"sampling_rate.*0\.0"),
        (dict(sampling_rate=1.5), r"sampling_rate.*1\.5"),
        (dict(rounds=0), r"rounds.*0"),
        (dict(rounds=2.5), r"rounds.*2\.5"),
        (dict(accountant="moments"), "moments"),
    ],
)
def test_epsilon_rejects_bad_inputs(override: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        epsilon(**{**_EPS_OK, **override})


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf])
def test_clip_rejects_bad_max_norm(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"max_norm.*{bad}"):
        clip_l2(np.ones(3), max_norm=bad)


def test_other_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"target_epsilon.*-1"):
        noise_for_epsilon(target_epsilon=-1.0, sampling_rate=1.0, rounds=3, delta=DELTA)
    with pytest.raises(ValueError, match=r"rounds.*0"):
        noise_for_epsilon(target_epsilon=1.0, sampling_rate=1.0, rounds=0, delta=DELTA)
    with pytest.raises(ValueError, match=r"num_clients.*0"):
        noise_std_per_client(noise_multiplier=1.0, sensitivity=1.0, num_clients=0)
    with pytest.raises(ValueError, match=r"sensitivity.*-1"):
        noise_std_per_client(noise_multiplier=1.0, sensitivity=-1.0, num_clients=5)
    with pytest.raises(ValueError, match=r"std.*-0\.1"):
        add_gaussian_noise(np.ones(3), std=-0.1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="Generator"):
        add_gaussian_noise(np.ones(3), std=0.1, rng=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"noise_multiplier.*-2"):
        ClientLevelAccountant(noise_multiplier=-2.0, sampling_rate=1.0, delta=DELTA)
    with pytest.raises(ValueError, match=r"delta.*1\.5"):
        ClientLevelAccountant(noise_multiplier=1.0, sampling_rate=1.0, delta=1.5)
