"""BFV aggregation (issue #6): exact sums, key model, security and noise-budget refusals, bytes."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as sealapi
from hypothesis import given, settings
from hypothesis import strategies as st

from medhe import bfv
from medhe.bfv.seal import _plaintext_bytes, _Scratch
from medhe.ckks import InsecureParametersError
from medhe.ckks.packing import dequantise, quantise
from medhe.comm import ByteLedger
from medhe.fl.bfv_transport import BFVTransport
from medhe.fl.transport import GaussianShares, Payload, RoundResult
from medhe.sparsify import TopKSparsifier

PARAMS = bfv.BFVParams()  # N = 4096, [32, 32, 45], t = 2^55, 8-bit values
LAYOUT = bfv.FieldLayout(value_bits=8, num_clients=5, plain_modulus_bits=55)
N = PARAMS.poly_modulus_degree
SIZE = 30_000
WEIGHTS = [0.5, 0.3, 0.2]


@pytest.fixture(scope="module")
def pair() -> tuple[bfv.BFVClient, bfv.BFVServer]:
    return bfv.BFVClient(PARAMS), bfv.BFVServer(bfv.parameters_bytes(PARAMS))


def _sum_through_bfv(pair, qs: list[np.ndarray], layout: bfv.FieldLayout = LAYOUT) -> tuple[np.ndarray, int]:
    client, server = pair
    uploads = [client.encrypt(bfv.pack_fields(q, layout, poly_modulus_degree=N)) for q in qs]
    rows, budget = client.decrypt(server.aggregate(uploads))
    return bfv.unpack_fields(rows, layout, size=qs[0].size, num_summed=len(qs)), budget


# --------------------------------------------------------------------------- exactness


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 3000), n=st.integers(1, 9), bits=st.integers(2, 12),
       t_bits=st.integers(20, 59))
def test_pack_unpack_is_exact_for_any_layout(seed, size, n, bits, t_bits) -> None:
    """Pure law: unpack(sum of packs) == sum of the quantised values, for every layout that fits."""
    try:
        layout = bfv.FieldLayout(value_bits=bits, num_clients=n, plain_modulus_bits=t_bits)
    except ValueError:
        return  # no field fits: refused (checked below)
    rng = np.random.default_rng(seed)
    L = layout.levels
    qs = [rng.integers(-L, L + 1, size) for _ in range(n)]
    rows = sum(bfv.pack_fields(q, layout, poly_modulus_degree=64) for q in qs)
    assert int(rows.max()) < 2**t_bits  # the packed sum never wraps modulo t
    np.testing.assert_array_equal(bfv.unpack_fields(rows, layout, size=size, num_summed=n), sum(qs))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 2 * 20_480 + 7), n=st.integers(1, 5),
       extreme=st.booleans())
def test_decrypted_sum_equals_plaintext_sum_exactly(pair, seed, size, n, extreme) -> None:
    rng = np.random.default_rng(seed)
    L = LAYOUT.levels
    if extreme:  # every field at its largest: the carry room is used in full
        qs = [np.full(size, L) for _ in range(n)]
    else:
        qs = [rng.integers(-L, L + 1, size) for _ in range(n)]
    got, budget = _sum_through_bfv(pair, qs)
    np.testing.assert_array_equal(got, sum(qs))
    assert budget >= 1


def test_crafted_plaintext_matches_seal(pair) -> None:
    """Our uncompressed serial plaintext loads into SEAL with exactly the coefficients given."""
    client, _ = pair
    coeffs = np.random.default_rng(0).integers(0, 2**55, N, dtype=np.uint64)
    plain = _Scratch().load(sealapi.Plaintext(), client.context, _plaintext_bytes(coeffs))
    assert plain.coeff_count() == N
    assert [plain.data(i) for i in (0, 1, N - 1)] == [int(coeffs[0]), int(coeffs[1]), int(coeffs[-1])]
    hexed = sealapi.Plaintext(" + ".join(f"{int(c):X}x^{i}" for i, c in reversed(list(enumerate(coeffs)))))
    assert all(hexed.data(i) == plain.data(i) for i in range(0, N, 97))
    rows, _ = client.decrypt(client.encrypt(coeffs[None, :]))
    np.testing.assert_array_equal(rows[0], coeffs)
    with pytest.raises(ValueError, match="plain modulus"):
        client.encrypt(np.full((1, N), 2**55, dtype=np.uint64))


# --------------------------------------------------------------------------- key model


def test_server_holds_no_secret_key(pair) -> None:
    _, server = pair
    assert {type(v) for v in vars(server).values()} == {sealapi.SEALContext, sealapi.Evaluator, _Scratch}
    forbidden = (sealapi.SecretKey, sealapi.PublicKey, sealapi.RelinKeys, sealapi.GaloisKeys, sealapi.KeyGenerator,
                 sealapi.Encryptor, sealapi.Decryptor)
    assert not any(isinstance(v, forbidden) for v in vars(server).values())
    assert not any(hasattr(server, a) for a in ("decrypt", "noise_budget", "secret_key", "_secret_key"))
    # all the server ever received: the parameters (under 100 bytes), which carry no key
    assert len(bfv.parameters_bytes(PARAMS)) < 100
    transport = BFVTransport(PARAMS, size=100, alignment="union", clip_norm=1.0, num_clients=3)
    assert {type(v) for v in vars(transport.server).values()} == {sealapi.SEALContext, sealapi.Evaluator, _Scratch}


# --------------------------------------------------------------------------- refusals


def test_insecure_parameters_refused_naming_n_bits_limit() -> None:
    with pytest.raises(InsecureParametersError, match=r"N=4096.*120 bits.*109-bit.*N=8192"):
        bfv.BFVParams(coeff_mod_bit_sizes=(40, 40, 40))
    with pytest.raises(InsecureParametersError, match=r"N=8192.*228 bits.*218-bit"):
        bfv.BFVParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 60, 60, 48))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"plain_modulus_bits": 60}, "plain_modulus_bits"),
    ({"coeff_mod_bit_sizes": (40, 30)}, r"below the data modulus \(40 bits"),
    ({"value_bits": 1}, "value_bits"),
    ({"poly_modulus_degree": 3000}, "poly_modulus_degree"),
    ({"security_level": 100}, "security_level"),
    ({"coeff_mod_bit_sizes": (32, 61)}, "coeff_mod_bit_size"),
])
def test_malformed_params_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        bfv.BFVParams(**kwargs)


def test_layout_without_budget_is_refused_before_any_round() -> None:
    """Data primes too small for t = 2^55: the measured budget is 0, so the transport refuses."""
    weak = bfv.BFVParams(coeff_mod_bit_sizes=(30, 30, 49))
    with pytest.raises(bfv.NoiseBudgetError, match=r"noise budget exhausted.*N=4096.*2\^55"):
        BFVTransport(weak, size=100, alignment="union", clip_norm=1.0, num_clients=5)


def test_decrypt_refuses_a_ciphertext_without_budget() -> None:
    weak = bfv.BFVParams(coeff_mod_bit_sizes=(30, 30, 49))
    client, server = bfv.BFVClient(weak), bfv.BFVServer(bfv.parameters_bytes(weak))
    rows = bfv.pack_fields(np.arange(-50, 50), LAYOUT, poly_modulus_degree=N)
    agg = server.aggregate([client.encrypt(rows) for _ in range(5)])
    with pytest.raises(bfv.NoiseBudgetError, match="ciphertext 0 of the aggregate"):
        client.decrypt(agg)


def test_budget_shrinks_with_clients_and_too_many_clients_are_refused(pair) -> None:
    client, server = pair
    assert bfv.summed_noise_budget(client, server, num_clients=1) >= bfv.summed_noise_budget(client, server,
                                                                                           num_clients=8)
    with pytest.raises(bfv.NoiseBudgetError, match="need >= 40"):
        bfv.check_noise_budget(client, server, num_clients=5, min_bits=40)
    with pytest.raises(ValueError, match="does not fit below t"):
        bfv.FieldLayout(value_bits=8, num_clients=2**10, plain_modulus_bits=16)
    transport = BFVTransport(PARAMS, size=50, alignment="dense", clip_norm=1.0, num_clients=5)
    payloads = [Payload(values=np.zeros(50, np.float32)) for _ in range(6)]
    with pytest.raises(ValueError, match="sized for 5 clients"):
        transport.round(payloads, weights=[1 / 6] * 6, noise=None, ledger=ByteLedger(), round_=1)
    with pytest.raises(ValueError, match="num_summed=6"):
        bfv.unpack_fields(np.zeros((1, N), np.uint64), LAYOUT, size=10, num_summed=6)


# --------------------------------------------------------------------------- bytes


class _RecordingLedger(ByteLedger):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, str, list[bytes]]] = []

    def add(self, payload, **kw) -> int:
        blobs = [payload] if isinstance(payload, (bytes, bytearray)) else list(payload)
        self.messages.append((kw["direction"], kw["category"], blobs))
        return super().add(blobs, **kw)


def _payloads(seed: int = 0, size: int = SIZE) -> list[Payload]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in WEIGHTS:
        idx = np.sort(rng.choice(size, size // 10, replace=False))
        out.append(Payload(values=rng.normal(scale=0.05, size=idx.size).astype(np.float32), indices=idx))
    return out


def test_bytes_counted_are_the_serialised_seeded_ciphertexts(pair) -> None:
    transport = BFVTransport(PARAMS, size=SIZE, alignment="union", clip_norm=1.0, num_clients=3)
    ledger = _RecordingLedger()
    transport.setup(ledger, num_clients=3)
    res = transport.round(_payloads(), weights=WEIGHTS, noise=None, ledger=ledger, round_=1)
    ups = [b for d, c, blobs in ledger.messages if d == "up" and c == "ciphertext" for b in blobs]
    downs = [b for d, c, blobs in ledger.messages if d == "down" and c == "ciphertext" for b in blobs]
    assert len(ups) == 3 * res.info["ciphertexts_per_client"] and len(downs) == len(ups)
    assert ledger.total(direction="up", category="ciphertext") == sum(map(len, ups))
    assert ledger.total(direction="down", category="ciphertext") == sum(map(len, downs))
    assert ledger.total(round_=0, category="context") == len(bfv.parameters_bytes(PARAMS))
    client, server = pair
    for blob in ups[:2]:  # each upload is a real SEAL ciphertext the server can load
        ct = _Scratch().load(sealapi.Ciphertext(), server.context, blob)
        assert ct.size() == 2 and ct.poly_modulus_degree() == N
    assert max(map(len, ups)) < 0.55 * min(map(len, downs))  # seeded uplink, full-size downlink


def test_seeded_ciphertexts_are_about_half_the_full_ones(pair) -> None:
    client, _ = pair
    row = bfv.pack_fields(np.random.default_rng(3).integers(-127, 128, LAYOUT.values_per_ciphertext(N)), LAYOUT,
                          poly_modulus_degree=N)
    seeded, full = len(client.encrypt(row)[0]), len(client.encrypt_full(row[0]))
    assert 0.45 * full < seeded < 0.55 * full
    assert 32_768 < seeded < 36_000  # two 32-bit residues per coefficient: ~4 bytes each after zstd


# --------------------------------------------------------------------------- transport


@pytest.mark.parametrize("alignment", ["union", "dense"])
@pytest.mark.parametrize("with_noise", [False, True])
def test_transport_mean_is_the_exact_sum_of_quantised_values(alignment, with_noise) -> None:
    transport = BFVTransport(PARAMS, size=SIZE, alignment=alignment, clip_norm=1.0, num_clients=3)
    payloads = _payloads(1)

    noise = GaussianShares(std=0.01, seed=9, round_=1)
    res = transport.round(payloads, weights=WEIGHTS, noise=noise if with_noise else None, ledger=ByteLedger(),
                          round_=1)
    assert isinstance(res, RoundResult) and res.mean_update.dtype == np.float32
    assert set(res.timings) == {"align", "noise", "quantise", "encrypt", "aggregate", "decrypt"} and res.info["noise_budget_left"] >= 1
    bound = transport.bound(WEIGHTS, 0, noise if with_noise else None)
    assert bound == pytest.approx(max(WEIGHTS) + (4 * 0.01 if with_noise else 0.0))
    assert res.info["quant_bound"] == bound
    want = np.zeros(SIZE)
    for i, (p, w) in enumerate(zip(payloads, WEIGHTS)):
        x = np.zeros(SIZE)
        x[p.indices] = w * p.values.astype(np.float64)
        if with_noise:
            support = np.unique(np.concatenate([q.indices for q in payloads])) if alignment == "union" else None
            pos = support if support is not None else np.arange(SIZE)
            x[pos] += noise(i, pos.size)
        want += quantise(x, bits=8, bound=bound)
        # feedback: (x - deq(q)) / w at the client's own positions; the noise is not fed back
        idx, err = res.feedback[i]
        np.testing.assert_array_equal(idx, p.indices)
        np.testing.assert_allclose(err, (x[idx] - dequantise(quantise(x[idx], bits=8, bound=bound), bits=8,
                                                              bound=bound)) / w, atol=1e-12)
    np.testing.assert_array_equal(res.mean_update, dequantise(want, bits=8, bound=bound).astype(np.float32))


def test_quantisation_error_feedback_loses_nothing_over_rounds() -> None:
    """sent (as delivered) + residual == update + old residual, per client and round; telescoped."""
    size, rounds = 4000, 4
    transport = BFVTransport(PARAMS, size=size, alignment="union", clip_norm=1.0, num_clients=3)
    sps = [TopKSparsifier(size=size, sparsity=0.9, adaptive=False) for _ in WEIGHTS]
    rng = np.random.default_rng(5)
    total_in = np.zeros((3, size))
    total_delivered = np.zeros((3, size))
    for r in range(1, rounds + 1):
        updates = [rng.normal(scale=0.02, size=size) for _ in WEIGHTS]
        old = [sp.residual.copy() for sp in sps]
        msgs = [sp.compress(u) for sp, u in zip(sps, updates)]
        res = transport.round([Payload(values=m.values, indices=m.indices) for m in msgs], weights=WEIGHTS,
                              noise=None, ledger=ByteLedger(), round_=r)
        bound = transport.bound(WEIGHTS, 0)
        delivered_sum = np.zeros(size)
        zero = []  # the recorded zero fraction is over each client's own values, not the union padding
        for i, (sp, m, (idx, err), w) in enumerate(zip(sps, msgs, res.feedback, WEIGHTS)):
            zero.append(np.mean(quantise(w * m.values, bits=8, bound=bound) == 0))
            sp.absorb(idx, err)
            delivered = np.zeros(size)  # what reached the aggregate from client i, in its own units
            delivered[m.indices] = dequantise(quantise(w * m.values, bits=8, bound=bound), bits=8, bound=bound) / w
            np.testing.assert_allclose(delivered + sp.residual, updates[i] + old[i], rtol=0, atol=1e-12)
            total_in[i] += updates[i]
            total_delivered[i] += delivered
            delivered_sum += w * delivered
        np.testing.assert_allclose(res.mean_update, delivered_sum, rtol=0, atol=1e-6)  # float32 downlink
        assert res.info["quant_zero_frac"] == pytest.approx(np.mean(zero), abs=1e-12)
    for i, sp in enumerate(sps):
        np.testing.assert_allclose(total_delivered[i] + sp.residual, total_in[i], rtol=0, atol=1e-10)


def test_transport_argument_checks() -> None:
    with pytest.raises(ValueError, match="alignment"):
        BFVTransport(PARAMS, size=10, alignment="own", clip_norm=1.0, num_clients=2)
    with pytest.raises(ValueError, match="clip_norm"):
        BFVTransport(PARAMS, size=10, alignment="union", clip_norm=0.0, num_clients=2)
    with pytest.raises(ValueError, match="range_factor"):
        BFVTransport(PARAMS, size=10, alignment="union", clip_norm=1.0, num_clients=2, range_factor=-1.0)
    with pytest.raises(TypeError, match="BFVParams"):
        BFVTransport({}, size=10, alignment="union", clip_norm=1.0, num_clients=2)
    t = BFVTransport(PARAMS, size=10, alignment="dense", clip_norm=1.0, num_clients=2)
    with pytest.raises(ValueError, match="weights must be > 0"):
        t.round([Payload(values=np.ones(10, np.float32))] * 2, weights=[1.0, 0.0], noise=None, ledger=ByteLedger(),
                round_=1)
    assert t.bound([0.5, 0.5], 100) == 0.5
    t2 = BFVTransport(PARAMS, size=10, alignment="dense", clip_norm=2.0, num_clients=2, range_factor=4.0)
    assert t2.bound([0.75, 0.25], 100) == pytest.approx(2.0 * 0.75 * 4.0 / 10)
    assert t2.bound([0.75, 0.25], 100, GaussianShares(std=0.5, seed=0, round_=1)) == pytest.approx(0.6 + 4 * 0.5)
    with pytest.raises(TypeError, match="GaussianShares"):
        t2.bound([0.75, 0.25], 100, lambda i, n: np.zeros(n))
