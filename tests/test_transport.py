"""Encrypted aggregation equals the plaintext weighted mean, for every method's transport."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from medhe import ckks, fl
from medhe.comm import ByteLedger
from medhe.fl import methods
from medhe.fl.ckks_transport import CKKSTransport
from medhe.fl.bfv_transport import BFVTransport
from medhe.fl.transport import (GaussianShares, Payload, PlainTransport, SkellamShares, check_round_inputs,
                                 quantisation_bound)
from medhe.params import CKKSParams

SIZE = 10_000
CFG = CKKSParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 40, 60), scale_bits=40, pack_bits=8,
                 pack_batch=4)
WEIGHTS = [0.5, 0.3, 0.2]


def _tol(n_clients: int, max_abs: float) -> float:
    """CKKS error bound used throughout: 4 n (N 2^-scale + max|x| 2^-40) (see tests/test_ckks.py)."""
    return 4 * n_clients * (CFG.poly_modulus_degree * 2.0**-CFG.scale_bits + max_abs * 2.0**-40)


def _payloads(sparse: bool, seed: int = 0) -> list[Payload]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in WEIGHTS:
        x = rng.normal(scale=0.01, size=SIZE).astype(np.float32)
        if sparse:
            idx = np.sort(rng.choice(SIZE, size=SIZE // 10, replace=False))
            out.append(Payload(values=x[idx], indices=idx))
        else:
            out.append(Payload(values=x))
    return out


def _round(transport, payloads, noise=None):
    ledger = ByteLedger()
    transport.setup(ledger, num_clients=len(payloads))
    res = transport.round(payloads, weights=WEIGHTS, noise=noise, ledger=ledger, round_=1)
    return res, ledger


_noise = GaussianShares(std=1e-3, seed=7, round_=1)


# ------------------------------------------------------------------ references written here
# Independent of medhe's align / union / scatter / quantise helpers: plain numpy on the law the
# transports promise (clients send w_i * v_i plus a noise share on the round's support; the server adds).


def _support(payloads: list[Payload], alignment: str) -> np.ndarray:
    """The positions every client encodes: all of them (dense) or the union of the index sets."""
    if payloads[0].indices is None or alignment == "dense":
        return np.arange(SIZE)
    return np.array(sorted(set().union(*(p.indices.tolist() for p in payloads))), dtype=np.int64)


def _client_vectors(payloads: list[Payload], alignment: str, noise) -> tuple[np.ndarray, list[np.ndarray]]:
    """(support, each client's w_i * v_i + noise share on the support), float64."""
    support = _support(payloads, alignment)
    out = []
    for i, (p, w) in enumerate(zip(payloads, WEIGHTS)):
        full = np.zeros(SIZE)
        full[np.arange(SIZE) if p.indices is None else p.indices] = p.values.astype(np.float64)
        x = w * full[support]
        if noise is not None:
            x = x + noise(i, support.size).astype(np.float64)  # the client's share, drawn for what it sends
        out.append(x)
    return support, out


def _reference_mean(payloads: list[Payload], alignment: str, noise) -> np.ndarray:
    support, xs = _client_vectors(payloads, alignment, noise)
    mean = np.zeros(SIZE)
    mean[support] = np.sum(xs, axis=0)
    return mean


def _reference_quantise(x: np.ndarray, bound: float) -> np.ndarray:
    """8 bits: clip to [-b, b], round to the nearest of the integers -127..127 (2^7 - 1)."""
    return np.rint(np.clip(x, -bound, bound) * 127 / bound)


def test_reference_support_is_the_union() -> None:
    a = Payload(values=np.ones(2, np.float32), indices=np.array([1, 5]))
    b = Payload(values=np.ones(2, np.float32), indices=np.array([5, 7]))
    assert _support([a, b], "union").tolist() == [1, 5, 7]


@pytest.mark.parametrize("sparse, alignment", [(False, "union"), (True, "union"), (True, "dense")])
@pytest.mark.parametrize("noise", [None, _noise])
def test_ckks_and_plain_means_equal_the_reference(sparse, alignment, noise):
    """Each transport against the reference written above (not against each other: they share
    the alignment code, so comparing them could not catch a wrong alignment)."""
    payloads = _payloads(sparse)
    expected = _reference_mean(payloads, alignment, noise)
    plain, _ = _round(PlainTransport(size=SIZE, alignment=alignment), payloads, noise)
    np.testing.assert_allclose(plain.mean_update, expected, rtol=0, atol=1e-7)  # float32 messages
    enc, ledger = _round(CKKSTransport(CFG, size=SIZE, packing=False, alignment=alignment, clip_norm=1.0,
                                       num_clients=3), payloads, noise)
    err = np.max(np.abs(enc.mean_update.astype(np.float64) - expected))
    assert err <= _tol(3, 0.1) + 1e-7  # + float32 rounding of the decrypted mean
    assert ledger.total(round_=0, category="context") > 0
    assert ledger.total(round_=1, direction="up", category="ciphertext") > 0
    has_index = ledger.total(round_=1, category="index") > 0
    assert has_index == (sparse and alignment == "union")


def test_plain_own_alignment_equals_the_reference_and_refuses_noise():
    """``own``: each client sends its own k positions (no union); distributed noise is refused there,
    since each client would noise only its own positions."""
    payloads = _payloads(True)
    expected = np.zeros(SIZE)
    for p, w in zip(payloads, WEIGHTS):
        expected[p.indices] += w * p.values.astype(np.float64)
    res, _ = _round(PlainTransport(size=SIZE, alignment="own"), payloads)
    np.testing.assert_allclose(res.mean_update, expected, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="own"):
        _round(PlainTransport(size=SIZE, alignment="own"), payloads, _noise)


def test_packed_ckks_sum_equals_the_sum_of_quantised_values():
    payloads = _payloads(True, seed=1)
    tr = CKKSTransport(CFG, size=SIZE, packing=True, alignment="union", clip_norm=0.05, num_clients=3)
    res, _ = _round(tr, payloads)
    bound = 0.05 * max(WEIGHTS)  # range_factor None: the worst case C * w_max
    assert res.info["quant_bound"] == pytest.approx(bound)
    support, xs = _client_vectors(payloads, "union", None)
    qs = [_reference_quantise(x, bound) for x in xs]
    expected = np.zeros(SIZE)
    expected[support] = np.sum(qs, axis=0) * bound / 127
    np.testing.assert_allclose(res.mean_update, expected, rtol=0, atol=1e-9)
    # zero fraction over each client's own positions (10 % of SIZE each), not the union padding
    own_zero = [np.mean(q[np.searchsorted(support, p.indices)] == 0) for q, p in zip(qs, payloads)]
    assert res.info["quant_zero_frac"] == pytest.approx(np.mean(own_zero)) and 0 < np.mean(own_zero) < 1
    # the quantisation error goes back to each client, at its own positions, in payload units
    for p, w, x, q, (idx, err) in zip(payloads, WEIGHTS, xs, qs, res.feedback):
        np.testing.assert_array_equal(idx, p.indices)
        pos = np.searchsorted(support, p.indices)
        np.testing.assert_allclose(err, (x[pos] - q[pos] * bound / 127) / w, atol=1e-12)


def _bfv_transport(size: int, range_factor: float | None):
    from medhe.bfv import BFVParams

    cfg = BFVParams(poly_modulus_degree=4096, coeff_mod_bit_sizes=(32, 32, 45), plain_modulus_bits=55, value_bits=8)
    return BFVTransport(cfg, size=size, alignment="dense", clip_norm=1.0, num_clients=3, range_factor=range_factor)


def _ckks_transport(size: int, range_factor: float | None):
    return CKKSTransport(CFG, size=size, packing=True, alignment="dense", clip_norm=1.0, num_clients=3,
                         range_factor=range_factor)


@pytest.mark.parametrize("make", [_ckks_transport, _bfv_transport], ids=["ckks", "bfv"])
def test_worst_case_bound_rounds_a_large_clipped_update_to_zero_and_the_scaled_bound_does_not(make):
    """The law behind quant.range_factor: with the worst-case bound C * w_max, every entry of a
    clipped 200k-value update with no outliers lies below half an 8-bit step, so the aggregate is exactly zero and
    the model would never move; the bound C * w_max * 4 / sqrt(k) delivers it within 2 % (L2)."""
    size = 200_000
    rng = np.random.default_rng(11)
    payloads = []
    for _ in WEIGHTS:
        v = rng.choice([-1.0, 1.0], size=size) * rng.uniform(0.5, 1.0, size=size)  # |v_j| within 2x of each other
        payloads.append(Payload(values=(v / np.linalg.norm(v)).astype(np.float32)))  # clipped to C = 1
    exact = sum(w * p.values.astype(np.float64) for p, w in zip(payloads, WEIGHTS))
    worst, _ = _round(make(size, None), payloads)
    assert worst.info["quant_zero_frac"] == 1.0 and not np.any(worst.mean_update)
    scaled, _ = _round(make(size, 4.0), payloads)
    assert scaled.info["quant_bound"] == pytest.approx(max(WEIGHTS) * 4 / np.sqrt(size))
    assert scaled.info["quant_zero_frac"] < 0.1 and scaled.info["quant_saturated_frac"] < 1e-3
    rel = np.linalg.norm(scaled.mean_update - exact) / np.linalg.norm(exact)
    assert rel < 0.02


def test_quantisation_bound_checks_and_widens_for_noise():
    b = quantisation_bound(clip_norm=2.0, weights=[0.25, 0.75], num_values=10_000, range_factor=4.0,
                           noise_std=0.01, noise_sigmas=3.0)
    assert b == pytest.approx(2.0 * 0.75 * 4 / 100 + 0.03)
    assert quantisation_bound(clip_norm=1.0, weights=[1.0], num_values=4, range_factor=4.0) == 1.0  # capped
    for bad in ({"range_factor": 0.0}, {"noise_sigmas": -1.0}, {"noise_std": float("nan")}, {"clip_norm": 0.0}):
        kw = {"clip_norm": 1.0, "weights": [1.0], "num_values": 1, "range_factor": None, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            quantisation_bound(**kw)


def test_server_holds_no_secret_key_and_cannot_decrypt():
    tr = CKKSTransport(CFG, size=SIZE, packing=False, alignment="union", clip_norm=1.0, num_clients=3)
    assert ckks.holds_secret_key(tr.client_ctx)
    assert not ckks.holds_secret_key(tr.server_ctx)
    chunks = ckks.encrypt_vector(tr.client_ctx, np.ones(10))
    with pytest.raises(ValueError, match="secret key"):
        ckks.decrypt_vector(tr.server_ctx, chunks, 10)


def test_the_papers_parameter_set_is_refused_before_tenseal():
    paper = dataclasses.replace(CFG, coeff_mod_bit_sizes=(60, 60, 60, 60))
    with pytest.raises(ckks.InsecureParametersError, match="8192.*240.*218"):
        CKKSTransport(paper, size=SIZE, packing=False, alignment="union", clip_norm=1.0, num_clients=3)


def test_plain_sparse_transport_counts_index_sets_and_values():
    payloads = _payloads(True)
    res, ledger = _round(PlainTransport(size=SIZE), payloads)
    for i, p in enumerate(payloads):
        idx_bytes = len(ckks.encode_index_set(p.indices, length=SIZE))
        assert ledger.total(round_=1, client=i, direction="up", category="index") == idx_bytes
        assert ledger.total(round_=1, client=i, direction="up", category="update") == 4 * p.nnz
    np.testing.assert_allclose(res.mean_update, _reference_mean(payloads, "union", None), atol=1e-7)


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_every_method_runs_and_records_bytes_times_epsilon(method, tabular_params):
    p = dataclasses.replace(tabular_params, train=dataclasses.replace(tabular_params.train, rounds=1),
                            sparsify=dataclasses.replace(tabular_params.sparsify, sparsity=0.5))
    res = fl.run(p, method=method, seed=0, progress=False)
    spec = methods.get(method)
    row = res.final
    assert row["bytes_up_per_client"] > 0 and row["bytes_down_per_client"] > 0
    assert ("epsilon_rdp" in row) == spec.noise
    if spec.noise and spec.dp_mechanism == "skellam":  # integer shares after quantisation: covered
        priv = res.record["privacy"]
        assert priv["epsilon_covered"] and "Skellam" in priv["mechanism"] and row["epsilon_status"].startswith("Skellam")
        assert math.isfinite(row["epsilon_rdp"]) and row["epsilon_rdp"] > 0 and priv["epsilon_rdp"] == row["epsilon_rdp"]
        assert len(priv["skellam"]["rounds"]) == 1
    elif spec.noise:
        quantised = spec.encryption == "bfv" or spec.packing  # per-client rounding of the noisy shares
        priv = res.record["privacy"]
        assert priv["rounds"] == 1 and priv["epsilon_covered"] == (not quantised)
        if quantised:  # never the Gaussian's number
            assert np.isnan(row["epsilon_rdp"]) and np.isnan(row["epsilon_pld"])
            assert row["epsilon_status"].startswith("not covered")
            assert priv["epsilon_rdp"] == priv["epsilon_pld"] == "not covered"
            assert "rounded per client" in priv["mechanism"]
        else:
            assert row["epsilon_rdp"] >= row["epsilon_pld"] > 0
            assert priv["epsilon_rdp"] == row["epsilon_rdp"]
    if spec.encryption == "ckks":
        assert row["bytes_up_ciphertext"] > 0 and {"time_encrypt", "time_aggregate", "time_decrypt"} <= set(row)
        assert res.record["bytes_setup"] > 0
    assert {"time_local_training", "time_sparsify_clip", "time_aggregate"} <= set(row)
    assert 0.0 < row["density"] <= 1.0
    # every method learns past the base rate (72 / 114 = 0.632 on this test split); measured 0.86-0.94
    # over seeds 0-2, so 0.15 above the majority rate leaves room and still fails a model that did not learn
    assert row["majority_accuracy"] == pytest.approx(72 / 114)
    # record-level DP-SGD (epsilon 3 per client over this one round of ~38 records each) moves less: 0.75 measured
    assert row["accuracy"] >= row["majority_accuracy"] + (0.05 if spec.record_dp else 0.15)
    assert row["model_change_l2"] > 0 and res.history[0]["model_change_l2"] == 0.0  # every method moves the model


def _disjoint_payloads(size: int) -> list[Payload]:
    """Three clients with disjoint index sets and values far above one quantisation step."""
    rng = np.random.default_rng(5)
    perm = rng.permutation(size)
    k = size // 10
    return [Payload(values=np.full(k, 0.5, dtype=np.float32), indices=np.sort(perm[i * k:(i + 1) * k]))
            for i in range(len(WEIGHTS))]


@pytest.mark.parametrize("make", [_ckks_transport, _bfv_transport], ids=["ckks", "bfv"])
def test_quant_zero_fraction_counts_own_positions_not_union_padding(make):
    """Disjoint index sets under union alignment: two thirds of each client's encoded vector is padding
    (zeros where another client selected). None of the client's own values rounds to zero, so the
    recorded zero fraction must be 0, not about 2/3."""
    tr = make(SIZE, 4.0)
    tr.alignment = "union"
    res, _ = _round(tr, _disjoint_payloads(SIZE))
    assert res.info["union_density"] == pytest.approx(0.3)
    assert res.info["quant_zero_frac"] == 0.0


@pytest.mark.parametrize("transport", ["plain", "ckks", "bfv"])
def test_every_transport_times_alignment_and_noise_under_the_same_phase_names(transport):
    make = {"plain": lambda: PlainTransport(size=SIZE, alignment="union"),
            "ckks": lambda: _ckks_transport(SIZE, 4.0), "bfv": lambda: _bfv_transport(SIZE, 4.0)}[transport]
    tr = make()
    tr.alignment = "union"
    res, _ = _round(tr, _payloads(True), noise=_noise)
    expected = {"align", "noise", "aggregate"} | ({"quantise", "encrypt", "decrypt"} if transport != "plain" else set())
    assert set(res.timings) == expected
    assert all(v >= 0 for v in res.timings.values())


def test_plain_own_alignment_times_index_sets_as_align():
    res, ledger = _round(PlainTransport(size=SIZE, alignment="own"), _payloads(True))
    assert set(res.timings) == {"noise", "align", "aggregate"}
    assert ledger.total(round_=1, category="index") > 0


def test_bfv_skellam_round_releases_the_exact_integer_sum_plus_the_summed_shares():
    """Distributed Skellam under BFV: each client rounds its weighted values to integers of L2 norm <= D2 = s C / n,
    adds its integer share, and the decrypted sum is exactly sum_i (q_i + share_i) (checked against a reference
    built here from the public bound); the noise in the released mean has std z C / n in value units."""
    from medhe.skellam import round_to_l2

    w = [1 / 3] * 3
    payloads = _payloads(True, seed=2)
    tr = _bfv_transport(SIZE, 4.0)
    tr.alignment = "union"
    noise = SkellamShares(noise_multiplier=1.0, sensitivity=1.0 / 3, seed=5, round_=1)
    ledger = ByteLedger()
    tr.setup(ledger, num_clients=3)
    res = tr.round(payloads, weights=w, noise=noise, ledger=ledger, round_=1)
    union = ckks.union_index_sets([p.indices for p in payloads])
    n = union.size
    bound = quantisation_bound(clip_norm=1.0, weights=w, num_values=n, range_factor=4.0)  # signal only
    s = 127 / bound
    l2 = s / 3
    qs = [round_to_l2(ckks.align_to_union(p.indices, p.values, union) * (1 / 3) * s, l2=l2, levels=127)
          for p in payloads]
    assert all(np.linalg.norm(q) <= l2 for q in qs)
    shares = [noise.draw(i, n, l2=l2, num_clients=3) for i in range(3)]
    expected = ckks.scatter_dense(union, (sum(qs) + sum(shares)) / s, length=SIZE).astype(np.float32)
    np.testing.assert_array_equal(res.mean_update, expected)
    assert res.info["skellam_l2_sensitivity"] == pytest.approx(l2)
    assert res.info["skellam_variance"] == pytest.approx(l2**2)
    released_noise = sum(shares) / s
    assert np.std(released_noise) == pytest.approx(1.0 / 3, rel=0.05)  # z C / n
    assert ledger.total(round_=1, direction="up", category="ciphertext") > 0


def test_bfv_skellam_keeps_each_clients_integer_vector_within_the_sensitivity():
    """Nearest rounding alone would inflate the norm: 60,000 entries at 0.51 integer steps (L2 norm 0.98 C before
    rounding) round to 1 each, norm 245 against the sensitivity D2 = s C / n = 127. The client must shrink
    until the rounded vector fits, or the accountant's D2 would be false."""
    size, w = 60_000, [1 / 3] * 3
    scale = 127 / (1.0 / 3)  # range_factor None: bound C * w_max
    v = np.full(size, 0.51 / (scale / 3), dtype=np.float32)
    assert np.linalg.norm(v) <= 1.0
    tr = _bfv_transport(size, None)
    noise = SkellamShares(noise_multiplier=1e-9, sensitivity=1.0 / 3, seed=0, round_=1)  # shares ~ 0
    res, _ = _round_w(tr, [Payload(values=v)] * 3, w, noise)
    per_client = res.mean_update.astype(np.float64) * scale / 3  # the integer vector each client sent
    assert res.info["skellam_l2_sensitivity"] == pytest.approx(127.0)
    assert np.linalg.norm(per_client) <= 127.0 + 1e-6


def _round_w(transport, payloads, weights, noise):
    ledger = ByteLedger()
    transport.setup(ledger, num_clients=len(payloads))
    return transport.round(payloads, weights=weights, noise=noise, ledger=ledger, round_=1), ledger


@pytest.mark.parametrize("payloads, weights, message", [
    ([], [], "one weight per payload, got 0 payloads and 0 weights"),
    ([Payload(values=np.zeros(4))], [0.5, 0.5], "one weight per payload, got 1 payloads and 2 weights"),
    ([Payload(values=np.zeros(4))] * 2, [0.5, 0.6], r"sum in \(0, 1\], got \[0.5, 0.6\]"),
    ([Payload(values=np.zeros(4)), Payload(values=np.zeros(3))], [0.5, 0.5], "client 1: dense payload has 3 values, the model has 4"),
])
def test_check_round_inputs_names_the_bad_input(payloads, weights, message):
    with pytest.raises(ValueError, match=message):
        check_round_inputs(payloads, weights, 4)


def test_check_round_inputs_accepts_sparse_payloads_of_any_length():
    check_round_inputs([Payload(values=np.zeros(2), indices=np.array([0, 3])), Payload(values=np.zeros(4))],
                       [0.25, 0.75], 4)
