"""he_classifier_only: CKKS on the classifier head, plaintext for the rest, every byte counted."""

from pathlib import Path

import numpy as np
import pytest
import torch

from medhe import comm, params
from medhe.fl import methods
from medhe.fl.split_transport import SplitTransport, head_indices, split_transport
from medhe.fl.transport import Payload, PlainTransport

P = params.load(Path(__file__).resolve().parents[1] / "profiles" / "quick.yaml")


def _tiny_distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=8,
                           num_labels=2)
    return DistilBertForSequenceClassification(cfg)


def test_head_is_pre_classifier_and_classifier_at_the_end_of_the_flat_vector():
    module = _tiny_distilbert()
    size = sum(p.numel() for p in module.parameters())
    head = head_indices(module)
    dim = 16
    assert head.size == (dim * dim + dim) + (dim * 2 + 2)  # pre_classifier + classifier, the paper's "classifier layers"
    np.testing.assert_array_equal(head, np.arange(size - head.size, size))


def test_head_of_the_papers_model_is_592130_parameters():
    """The paper's code encrypts 592,130 of 66,955,010 parameters (768 x 768 + 768 + 768 x 2 + 2)."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    module = DistilBertForSequenceClassification(DistilBertConfig(num_labels=2))
    assert head_indices(module).size == 768 * 768 + 768 + 768 * 2 + 2 == 592_130


def test_without_a_base_model_the_head_is_the_last_layer_and_a_single_layer_is_refused():
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    np.testing.assert_array_equal(head_indices(mlp), np.arange(16, 26))  # 3 x 4 + 4 before it, 4 x 2 + 2 in it
    with pytest.raises(ValueError, match="no separate classifier head"):
        head_indices(torch.nn.Linear(3, 2))


def _payloads(size, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [Payload(values=rng.normal(0, 0.1, size).astype(np.float32)) for _ in range(n)]


def test_split_round_is_the_weighted_mean_and_counts_ciphertexts_and_plaintext():
    module = _tiny_distilbert()
    size = sum(p.numel() for p in module.parameters())
    tr = split_transport(P, module=module, size=size, num_clients=3)
    head = head_indices(module)
    payloads, weights = _payloads(size), [0.5, 0.3, 0.2]
    ledger = comm.ByteLedger()
    tr.setup(ledger, num_clients=3)
    res = tr.round(payloads, weights=weights, noise=None, ledger=ledger, round_=1)
    expect = sum(w * p.values.astype(np.float64) for w, p in zip(weights, payloads))
    np.testing.assert_allclose(res.mean_update, expect, atol=1e-6)
    up = ledger.breakdown(round_=1, direction="up")
    assert up["update"] == 3 * 4 * (size - head.size)  # float32, every non-head coordinate in the clear
    assert res.info["ciphertexts_per_client"] == 1  # the head fits one CKKS ciphertext of 4096 slots
    assert up["ciphertext"] > 3 * 100_000  # three serialised N = 8192 ciphertexts
    assert res.info["encrypted_fraction"] == pytest.approx(head.size / size)
    # the rest travels exactly as plain FedAvg would send it: compare with the plaintext transport alone
    ref = comm.ByteLedger()
    PlainTransport(size=size - head.size, alignment="dense").round(
        [Payload(values=p.values[tr.rest]) for p in payloads], weights=weights, noise=None, ledger=ref, round_=1)
    assert ref.breakdown(round_=1, direction="up")["update"] == up["update"]


def test_split_transport_refuses_sparse_payloads_noise_and_mismatched_parts():
    tr = SplitTransport(head=np.array([3, 4]), encrypted=PlainTransport(size=2, alignment="dense"),
                        plain=PlainTransport(size=3, alignment="dense"), size=5)
    with pytest.raises(ValueError, match="dense updates only"):
        tr.round([Payload(values=np.ones(2, np.float32), indices=np.array([0, 1]))], weights=[1.0], noise=None,
                 ledger=comm.ByteLedger(), round_=1)
    with pytest.raises(ValueError, match="must carry 2 and 3 values"):
        SplitTransport(head=np.array([3, 4]), encrypted=PlainTransport(size=3), plain=PlainTransport(size=3), size=5)
    with pytest.raises(ValueError, match="sorted, unique"):
        SplitTransport(head=np.array([4, 3]), encrypted=PlainTransport(size=2), plain=PlainTransport(size=3), size=5)


def test_he_classifier_only_method_is_dense_ckks_on_the_head_without_noise():
    spec = methods.get("he_classifier_only")
    assert (spec.encryption, spec.encrypted_part, spec.sparsify, spec.noise) == ("ckks", "head", False, False)
    with pytest.raises(ValueError, match="encrypted_part='head' is dense CKKS without noise"):
        methods.MethodSpec("x", encryption="none", encrypted_part="head")
    with pytest.raises(ValueError, match="encrypted_part must be 'all' or 'head'"):
        methods.MethodSpec("x", encrypted_part="tail")
