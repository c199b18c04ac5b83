"""The protocol's roles: clients hold the key, the server adds bytes it cannot read, faults name the client."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tenseal as ts

from medhe import bfv, ckks
from medhe.comm import ByteLedger
from medhe.fl.bfv_transport import BFVTransport
from medhe.fl.ckks_transport import CKKSTransport, ckks_params
from medhe.fl.client import BFVCodec, CKKSCodec, CKKSKeys, Client, PlainCodec
from medhe.fl.engines.inprocess import exchange
from medhe.fl.plan import RoundPlan
from medhe.fl.server import BFVAggregator, CKKSAggregator, ClientMessageError, PlainAggregator
from medhe.fl.transport import GaussianShares, Payload, SkellamShares
from medhe.params import CKKSParams

SIZE = 600
CFG = CKKSParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 40, 60), scale_bits=40, pack_bits=8,
                 pack_batch=4)
BFV = bfv.BFVParams()  # N = 4096
WEIGHTS = [0.5, 0.3, 0.2]


def _payloads(seed: int = 0) -> list[Payload]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in WEIGHTS:
        idx = np.sort(rng.choice(SIZE, size=60, replace=False))
        out.append(Payload(values=rng.normal(scale=0.05, size=60).astype(np.float32), indices=idx))
    return out


def _plan(noise=None) -> RoundPlan:
    return RoundPlan(round=1, clients=[0, 1, 2], weights=WEIGHTS, clip_bound=1.0,
                     noise=RoundPlan.noise_dict(noise))


def _encoded(codecs, payloads, plan, server):
    """Each client's first value block, after the union exchange (in memory)."""
    msgs = [c.begin(plan, p) for c, p in zip(codecs, payloads)]
    union = None if msgs[0] is None else server.union(msgs, clients=plan.clients)
    for c in codecs:
        c.receive_union(union)
    start, stop = codecs[0].blocks()[0]
    return [c.encode(start, stop) for c in codecs], (start, stop)


def test_round_plan_round_trips_through_json_and_rebuilds_the_noise():
    for noise in (None, GaussianShares(std=0.01, seed=3, round_=2),
                  SkellamShares(noise_multiplier=1.1, sensitivity=0.25, seed=3, round_=2)):
        plan = RoundPlan(round=2, clients=[4, 1], weights=[0.25, 0.75], clip_bound=0.5,
                         noise=RoundPlan.noise_dict(noise), seed=3)
        back = RoundPlan.from_json(plan.to_json())
        assert back == plan and json.loads(plan.to_json())["clients"] == [4, 1]
        assert back.noise_shares() == noise
    assert plan.weight(1) == 0.75
    with pytest.raises(ValueError, match="client 7"):
        plan.slot(7)


def test_roles_from_bytes_alone_give_the_transports_result_exactly_under_bfv():
    """A deployment's picture: each client rebuilds the key from the bytes the clients share out of band, the
    server only from the setup message; the mean is bit-identical to the in-process transport's."""
    payloads = _payloads()
    noise = GaussianShares(std=1e-3, seed=5, round_=1)
    transport = BFVTransport(BFV, size=SIZE, alignment="union", clip_norm=1.0, num_clients=3)
    expected = transport.round(payloads, weights=WEIGHTS, noise=noise, ledger=ByteLedger(), round_=1)
    secret = transport.client.secret_key_bytes()  # out of band, among the clients only
    setup = transport.codec(0).setup_message()
    assert setup == bfv.parameters_bytes(BFV)
    codecs = [BFVCodec(bfv.BFVClient.from_secret_key_bytes(BFV, secret), layout=transport.layout, client=i,
                       size=SIZE, alignment="union", clip_norm=1.0) for i in range(3)]
    server = BFVAggregator(setup, size=SIZE, alignment="union")
    ledger = ByteLedger()
    res = exchange(_plan(noise), codecs, server, payloads, ledger=ledger)
    assert np.array_equal(res.mean_update, expected.mean_update)
    for a, b in zip(res.feedback, expected.feedback):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # no message of the round carries the secret key
    assert ledger.total(category="context") == 0
    assert not any(secret in m for m in (setup,))


def test_ckks_roles_from_bytes_match_the_transport_within_ckks_error():
    payloads = _payloads()
    transport = CKKSTransport(CFG, size=SIZE, packing=False, alignment="union", clip_norm=1.0, num_clients=3)
    expected = transport.round(payloads, weights=WEIGHTS, noise=None, ledger=ByteLedger(), round_=1)
    keys = CKKSKeys.from_bytes(transport.params, transport.keys.to_bytes())
    server = CKKSAggregator(keys.setup_message(), size=SIZE, alignment="union")
    codecs = [CKKSCodec(keys, client=i, size=SIZE, alignment="union") for i in range(3)]
    res = exchange(_plan(), codecs, server, payloads, ledger=ByteLedger())
    np.testing.assert_allclose(res.mean_update, expected.mean_update, atol=1e-6)
    assert np.any(res.mean_update)


def test_ckks_server_cannot_decrypt():
    keys = CKKSKeys(ckks_params(CFG))
    server = CKKSAggregator(keys.setup_message(), size=SIZE, alignment="dense")
    assert not server.context.has_secret_key()
    with pytest.raises(ValueError, match="secret key"):  # load_server_context refuses a context with the key
        CKKSAggregator(keys.to_bytes(), size=SIZE, alignment="dense")
    payloads = [Payload(values=np.full(SIZE, v, np.float32)) for v in (1.0, 2.0, 3.0)]
    codecs = [CKKSCodec(keys, client=i, size=SIZE, alignment="dense") for i in range(3)]
    plan = RoundPlan(round=1, clients=[0, 1, 2], weights=[1 / 3] * 3)
    sent, (start, stop) = _encoded(codecs, payloads, plan, server)
    agg = server.aggregate(sent)
    with pytest.raises(ValueError):  # TenSEAL: the server's context has no secret key
        ts.ckks_vector_from(server.context, agg[0]).decrypt()
    np.testing.assert_allclose(codecs[0].decode(start, stop, agg), 2.0, atol=1e-4)  # the clients' key can
    other = CKKSKeys(ckks_params(CFG))  # same parameters, another secret key
    wrong = ckks.decrypt_vector(other.context, agg, stop - start)
    assert np.max(np.abs(wrong - 2.0)) > 1.0


def test_bfv_server_cannot_decrypt():
    key = bfv.BFVClient(BFV)
    server = BFVAggregator(bfv.parameters_bytes(BFV), size=SIZE, alignment="dense")
    kinds = {type(v).__name__ for v in vars(server.server).values()}
    assert kinds == {"SEALContext", "Evaluator", "_Scratch"}  # no key, no Decryptor
    from medhe.fl.bfv_transport import BFVTransport as _T

    layout = _T(BFV, size=SIZE, alignment="dense", clip_norm=1.0, num_clients=3).layout
    codecs = [BFVCodec(key, layout=layout, client=i, size=SIZE, alignment="dense", clip_norm=1.0) for i in range(3)]
    payloads = [Payload(values=np.full(SIZE, 0.01 * (i + 1), np.float32)) for i in range(3)]
    plan = RoundPlan(round=1, clients=[0, 1, 2], weights=[1 / 3] * 3, clip_bound=1.0)
    sent, (start, stop) = _encoded(codecs, payloads, plan, server)
    agg = server.aggregate(sent)
    right = codecs[0].decode(start, stop, agg)
    other = BFVCodec(bfv.BFVClient(BFV), layout=layout, client=0, size=SIZE, alignment="dense", clip_norm=1.0)
    other.begin(plan, payloads[0])
    other.receive_union(None)
    with pytest.raises(bfv.NoiseBudgetError):  # another key: the aggregate does not decode at all
        other.decode(start, stop, agg)
    assert np.max(np.abs(right - 0.02)) < 1e-3


def _faulty(kind: str):
    if kind == "ckks":
        keys = CKKSKeys(ckks_params(CFG))
        server = CKKSAggregator(keys.setup_message(), size=SIZE, alignment="union")
        codecs = [CKKSCodec(keys, client=i, size=SIZE, alignment="union") for i in (10, 11, 12)]
        foreign = CKKSKeys(ckks_params(CKKSParams(poly_modulus_degree=16384, coeff_mod_bit_sizes=(60, 40, 40, 60),
                                                  scale_bits=40)))
        other = CKKSCodec(foreign, client=11, size=SIZE, alignment="union")
    else:
        key = bfv.BFVClient(BFV)
        server = BFVAggregator(bfv.parameters_bytes(BFV), size=SIZE, alignment="union")
        layout = BFVTransport(BFV, size=SIZE, alignment="union", clip_norm=1.0, num_clients=3).layout
        codecs = [BFVCodec(key, layout=layout, client=i, size=SIZE, alignment="union", clip_norm=1.0)
                  for i in (10, 11, 12)]
        foreign_params = bfv.BFVParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(43, 43, 44, 44))
        other = BFVCodec(bfv.BFVClient(foreign_params), layout=layout, client=11, size=SIZE, alignment="union",
                         clip_norm=1.0)
    return server, codecs, other


@pytest.mark.parametrize("kind", ["ckks", "bfv"])
def test_server_rejects_bytes_that_do_not_deserialise_naming_the_client(kind):
    server, codecs, _ = _faulty(kind)
    plan = RoundPlan(round=1, clients=[10, 11, 12], weights=WEIGHTS, clip_bound=1.0)
    sent, _ = _encoded(codecs, _payloads(), plan, server)
    sent[1] = [b"\x00garbage" * 10] + sent[1][1:]
    with pytest.raises(ClientMessageError, match="client 11: ciphertext 0 does not deserialise") as err:
        server.aggregate(sent, clients=plan.clients)
    assert err.value.client == 11
    truncated = [list(s) for s in _encoded(codecs, _payloads(), plan, server)[0]]
    truncated[2][0] = truncated[2][0][: len(truncated[2][0]) // 2]
    with pytest.raises(ClientMessageError, match="client 12"):
        server.aggregate(truncated, clients=plan.clients)


@pytest.mark.parametrize("kind", ["ckks", "bfv"])
def test_server_rejects_a_ciphertext_under_other_parameters_naming_the_client(kind):
    server, codecs, other = _faulty(kind)
    plan = RoundPlan(round=1, clients=[10, 11, 12], weights=WEIGHTS, clip_bound=1.0)
    payloads = _payloads()
    union = server.union([c.begin(plan, p) for c, p in zip(codecs, payloads)], clients=plan.clients)
    sent = []
    for c in codecs:
        c.receive_union(union)
        sent.append(c.encode(*c.blocks()[0]))
    other.begin(plan, payloads[1])
    other.receive_union(union)
    foreign = other.encode(*other.blocks()[0])
    sent[1] = (foreign + sent[1])[: len(sent[1])]  # client 11's first ciphertext under other parameters
    with pytest.raises(ClientMessageError, match="client 11: ciphertext 0 does not deserialise") as err:
        server.aggregate(sent, clients=plan.clients)


def test_server_rejects_unequal_message_counts_and_bad_index_sets_naming_the_client():
    server = PlainAggregator(size=SIZE, alignment="union")
    good = PlainCodec(client=4, size=SIZE, alignment="union").begin(RoundPlan(round=1, clients=[4, 5],
                                                                              weights=[0.5, 0.5]), _payloads()[0])
    with pytest.raises(ClientMessageError, match="client 5: index set does not decode"):
        server.union([good, b"\x07"], clients=[4, 5])
    with pytest.raises(ClientMessageError, match="client 5: sent 2 messages"):
        PlainAggregator(size=SIZE, alignment="dense").aggregate([[b"\0" * 8], [b"\0" * 8, b"\0" * 8]], clients=[4, 5])
    with pytest.raises(ClientMessageError, match="client 5: sent 3 values"):
        PlainAggregator(size=SIZE, alignment="dense").aggregate([[b"\0" * 8], [b"\0" * 12]], clients=[4, 5])


def test_client_state_survives_a_restart(tabular_params):
    """What a deployment keeps between rounds (residual, EMA threshold, accountant) round-trips through
    state_dict: a client rebuilt from it compresses the next update exactly as the original."""
    from medhe.fl import methods

    spec = methods.get("medhe")
    rng = np.random.default_rng(0)
    a = Client(0, np.arange(20), spec=spec, P=tabular_params, size=500)
    for _ in range(2):
        a.prepare(rng.normal(size=500).astype(np.float32))
    a.absorb((np.array([1, 3]), np.array([0.5, -0.25])))
    state = a.state_dict()
    json.dumps({k: v for k, v in state["sparsifier"].items() if k != "residual"})  # JSON apart from the array
    b = Client(0, np.arange(20), spec=spec, P=tabular_params, size=500)
    b.load_state_dict(state)
    delta = rng.normal(size=500).astype(np.float32)
    pa, _ = a.prepare(delta)
    pb, _ = b.prepare(delta)
    assert np.array_equal(pa.indices, pb.indices) and np.array_equal(pa.values, pb.values)
    assert np.array_equal(a.sparsifier.residual, b.sparsifier.residual)
    fresh = Client(0, np.arange(20), spec=spec, P=tabular_params, size=500)
    pf, _ = fresh.prepare(delta)
    assert not np.array_equal(pf.values, pa.values)  # the state matters
    with pytest.raises(ValueError, match="client 1"):
        Client(1, np.arange(20), spec=spec, P=tabular_params, size=500).load_state_dict(state)


@pytest.mark.parametrize("method", ["medhe_no_he", "topk", "medhe", "medhe_no_packing", "medhe_bfv", "medhe_bfv_skellam",
                                    "he_classifier_only"])
def test_factories_build_the_roles_a_method_needs(tabular_params, method):
    """make_keys / key_bytes / load_keys / make_codec / make_aggregator (what another engine calls) give the
    in-process transport's round: exactly for plaintext and BFV (an exact integer sum, whatever the key)."""
    from medhe.fl import methods, simulate
    from medhe.fl.client import key_bytes, load_keys, make_codec, make_keys
    from medhe.fl.server import make_aggregator

    from medhe.fl.split_transport import SplitTransport

    spec, P = methods.get(method), tabular_params
    payloads = _payloads(1)
    weights = [1 / 3] * 3
    noise = simulate._noise_fn(spec, P, seed=0, round_=1, weights=weights)
    head = np.arange(SIZE - 100, SIZE) if spec.encrypted_part == "head" else None
    if head is None:
        transport = simulate.make_transport(spec, P, size=SIZE, num_clients=3)
    else:
        payloads = [Payload(values=np.random.default_rng(i).normal(size=SIZE).astype(np.float32)) for i in range(3)]
        transport = SplitTransport(head=head, size=SIZE, plain=simulate.PlainTransport(size=SIZE - 100, alignment="dense"),
                                   encrypted=CKKSTransport(P.ckks, size=100, packing=False, alignment="dense",
                                                           clip_norm=1.0, num_clients=3))
    expected = transport.round(payloads, weights=weights, noise=noise, ledger=ByteLedger(), round_=1)
    shared = key_bytes(make_keys(spec, P))
    codecs = [make_codec(spec, P, load_keys(spec, P, shared), client=i, size=SIZE, num_clients=3, head=head)
              for i in range(3)]
    server = make_aggregator(spec, P, codecs[0].setup_message(), size=SIZE, head_size=None if head is None else 100)
    plan = RoundPlan(round=1, clients=[0, 1, 2], weights=weights, clip_bound=P.dp.clip_norm,
                     noise=RoundPlan.noise_dict(noise))
    res = exchange(RoundPlan.from_json(plan.to_json()), codecs, server, payloads, ledger=ByteLedger())
    if spec.encryption == "ckks":
        np.testing.assert_allclose(res.mean_update, expected.mean_update, atol=1e-6)
        if head is not None:  # the rest travelled in the clear, bit for bit
            assert np.array_equal(res.mean_update[: SIZE - 100], expected.mean_update[: SIZE - 100])
    else:
        assert np.array_equal(res.mean_update, expected.mean_update)
    assert np.any(res.mean_update)


@pytest.mark.parametrize("kind", ["plain", "ckks", "bfv"])
def test_a_codec_rebuilt_between_messages_from_its_round_state_finishes_the_round(kind):
    """An engine that starts a fresh process per message keeps the codec's round state between the union
    exchange and the aggregate; a codec rebuilt from it decodes and feeds back exactly as the original."""
    noise = GaussianShares(std=1e-3, seed=5, round_=1)
    if kind == "plain":
        server = PlainAggregator(size=SIZE, alignment="union")
        make = lambda i: PlainCodec(client=i, size=SIZE, alignment="union")  # noqa: E731
    elif kind == "ckks":
        keys = CKKSKeys(ckks_params(CFG))
        server = CKKSAggregator(keys.setup_message(), size=SIZE, alignment="union")
        packing = ckks.PackingSpec(bits=8, num_clients=3, batch=4, bound=1.0)
        make = lambda i: CKKSCodec(keys, packing=packing, client=i, size=SIZE, alignment="union")  # noqa: E731
    else:
        key = bfv.BFVClient(BFV)
        server = BFVAggregator(bfv.parameters_bytes(BFV), size=SIZE, alignment="union")
        layout = BFVTransport(BFV, size=SIZE, alignment="union", clip_norm=1.0, num_clients=3).layout
        make = lambda i: BFVCodec(key, layout=layout, client=i, size=SIZE, alignment="union")  # noqa: E731
    codecs = [make(i) for i in range(3)]
    plan = _plan(noise)
    sent, (start, stop) = _encoded(codecs, _payloads(), plan, server)
    agg = server.aggregate(sent)
    state = codecs[1].round_state()
    fresh = make(1)
    fresh.load_round_state(state)
    a, b = codecs[1].decode(start, stop, agg), fresh.decode(start, stop, agg)
    assert np.array_equal(a, b)
    ra, rb = codecs[1].finish(a), fresh.finish(b)
    assert np.array_equal(ra.mean_update, rb.mean_update) and np.any(ra.mean_update)
    assert (ra.feedback is None) == (rb.feedback is None) == (kind == "plain")
    if ra.feedback is not None:
        assert np.array_equal(ra.feedback[1], rb.feedback[1])
    assert ra.info == rb.info
