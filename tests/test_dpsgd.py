"""Record-level DP-SGD (medhe.dpsgd, Opacus) on the tabular task; the aggregate's noise-to-signal ratio."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from medhe import dpsgd, fl, model, params
from medhe.fl.transport import GaussianShares, noise_to_signal
from medhe.params import ModelParams


def _tiny(n: int = 40, d: int = 5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long().numpy()
    return model.build(ModelParams(name="mlp", hidden=8), seed=0, in_features=d), x, y


def _train(bundle, x, y, private, *, round_: int, seed: int = 0, batch_size: int = 8):
    return model.train_local(bundle.module, x, y, epochs=1, batch_size=batch_size, lr=1e-2, seed=seed,
                             client=0, round_=round_, private=private)


def _private(n: int, *, z: float | None = 1.0, target: float | None = None, batch_size: int = 8):
    return dpsgd.RecordLevelDP(num_records=n, batch_size=batch_size, epochs=1, rounds=3, max_grad_norm=1.0,
                               delta=1e-5, noise_multiplier=z, target_epsilon=target)


def test_epsilon_is_reported_grows_with_steps_and_is_opacus_rdp():
    bundle, x, y = _tiny()
    dp = _private(40)
    assert dp.steps == 0 and dp.epsilon() == 0.0
    eps = []
    for r in (1, 2, 3):
        _train(bundle, x, y, dp, round_=r)
        eps.append(dp.epsilon())
    assert dp.steps == 3 * dpsgd.steps_per_epoch(num_records=40, batch_size=8) == 15
    assert 0 < eps[0] < eps[1] < eps[2]
    # the law: Opacus's RDP accountant for (z = 1, q = 8/40, 15 steps), computed apart
    from opacus.accountants import RDPAccountant

    ref = RDPAccountant()
    for _ in range(15):
        ref.step(noise_multiplier=1.0, sample_rate=0.2)
    assert eps[2] == pytest.approx(ref.get_epsilon(delta=1e-5), rel=1e-12)
    assert eps[2] == pytest.approx(6.69796, abs=1e-5)  # golden: z = 1, q = 0.2, T = 15, delta = 1e-5, RDP


def test_target_epsilon_is_reached_at_the_planned_steps_and_never_exceeded():
    bundle, x, y = _tiny()
    dp = _private(40, z=None, target=3.0)
    for r in (1, 2, 3):
        _train(bundle, x, y, dp, round_=r)
    assert dp.steps == dp.planned_steps
    assert 2.95 <= dp.epsilon() <= 3.0
    assert dp.statement()["epsilon"] == dp.epsilon() and dp.statement()["level"] == "record"


def test_empty_poisson_batches_still_step_the_accountant():
    # q = 1/6: each step is empty with probability (5/6)^6 ~ 0.33, so 30 steps see some
    bundle, x, y = _tiny(n=6)
    dp = dpsgd.RecordLevelDP(num_records=6, batch_size=1, epochs=5, rounds=1, max_grad_norm=1.0, delta=1e-5,
                             noise_multiplier=1.0)
    w0 = model.get_flat(bundle.module)
    model.train_local(bundle.module, x, y, epochs=5, batch_size=1, lr=1e-2, seed=0, client=0, round_=1, private=dp)
    assert dp.steps == 5 * 6
    assert not np.array_equal(w0, model.get_flat(bundle.module))


def test_dpsgd_is_seeded_and_its_noise_matters():
    finals = []
    for seed, z in ((0, 1.0), (0, 1.0), (1, 1.0), (0, 0.0)):
        bundle, x, y = _tiny()
        _train(bundle, x, y, _private(40, z=z), round_=1, seed=seed)
        finals.append(model.get_flat(bundle.module))
    assert np.array_equal(finals[0], finals[1])
    assert not np.array_equal(finals[0], finals[2])
    assert not np.array_equal(finals[0], finals[3])


def test_hooks_are_removed_after_a_dp_round():
    bundle, x, y = _tiny()
    _train(bundle, x, y, _private(40), round_=1)
    assert all(getattr(p, "grad_sample", None) is None for p in bundle.module.parameters())
    w = model.get_flat(bundle.module)
    _train(bundle, x, y, None, round_=2)  # the plain path is untouched by the earlier DP round
    assert not np.array_equal(w, model.get_flat(bundle.module))


def test_medhe_dpsgd_runs_sparse_and_encrypted(tabular_params):
    P = dataclasses.replace(tabular_params, dp_sgd=params.DPSGDParams(target_epsilon=3.0))
    res = fl.run(P, method="medhe_dpsgd", seed=0, progress=False)
    last = res.history[-1]
    assert res.record["method_spec"]["record_dp"] and res.record["method_spec"]["encryption"] == "ckks"
    assert last["density"] < 0.5 and last["ciphertexts_per_client"] >= 1
    assert "noise_to_signal" not in last  # no client-level noise in this method
    rec = res.record["privacy_record_level"]
    assert len(rec["clients"]) == P.data.num_clients
    assert rec["epsilon_max"] == last["epsilon_record_max"] <= 3.0
    assert res.history[1]["epsilon_record_max"] < last["epsilon_record_max"]
    assert "epsilon is Opacus's" in rec["post_processing"]


def test_dp_sgd_params_need_exactly_one_of_target_and_multiplier():
    with pytest.raises(ValueError, match="exactly one of target_epsilon and noise_multiplier"):
        params.load_dict({"dp_sgd": {"target_epsilon": 3.0, "noise_multiplier": 1.0}})
    with pytest.raises(ValueError, match="exactly one"):
        params.load_dict({"dp_sgd": {"target_epsilon": None}})
    assert params.load_dict({"dp_sgd": {"target_epsilon": None, "noise_multiplier": 0.8}}).dp_sgd.noise_multiplier == 0.8


def test_noise_to_signal_is_measured_on_the_aggregate_and_scales_with_the_noise():
    """The function the in-process engine records per round, on hand-computed aggregates."""
    signals = [np.array([3.0, 0.0, 0.0]) * 0.5, np.array([0.0, 4.0, 0.0]) * 0.5]
    n = GaussianShares(std=0.1, seed=7, round_=1)
    shares = [n(0, 3).astype(np.float64), n(1, 3).astype(np.float64)]
    got = noise_to_signal(list(zip(signals, shares)))
    assert got == pytest.approx(np.linalg.norm(shares[0] + shares[1]) / 2.5, rel=1e-12)  # ||(1.5, 2, 0)|| = 2.5
    assert noise_to_signal(list(zip(signals, [2 * s for s in shares]))) == pytest.approx(2 * got, rel=1e-12)
    assert math.isinf(noise_to_signal([(np.zeros(3), shares[0]), (np.zeros(3), shares[1])]))
    with pytest.raises(ValueError, match="all of one length"):
        noise_to_signal([(np.zeros(3), shares[0]), (np.zeros(2), np.zeros(2))])


def test_a_dp_run_records_the_noise_to_signal_of_its_clients_shares(tabular_params):
    """Two one-round runs that differ only in z clip the same updates and draw shares scaled by z: the
    recorded ||sum of shares|| / ||sum of w v|| doubles with z."""
    rows = {}
    for z in (0.5, 1.0):
        P = params.load_dict({**tabular_params.to_dict(), "dp": {**tabular_params.to_dict()["dp"], "noise_multiplier": z},
                              "train": {**tabular_params.to_dict()["train"], "rounds": 1}})
        rows[z] = fl.run(P, method="medhe_no_he", seed=0, progress=False).history[-1]["noise_to_signal"]
    assert 0 < rows[0.5] and rows[1.0] == pytest.approx(2 * rows[0.5], rel=1e-4)


def test_client_level_runs_record_noise_to_signal(tabular_params):
    res = fl.run(tabular_params, method="medhe_no_he", seed=0, progress=False)
    ratios = [h["noise_to_signal"] for h in res.history[1:]]
    assert len(ratios) == tabular_params.train.rounds and all(r > 0 and math.isfinite(r) for r in ratios)


def test_frozen_embeddings_stay_put_for_the_round_and_the_layout_survives():
    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(10, 3)
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(self.emb(x).mean(dim=1))

    net = Bag()
    x = torch.randint(0, 10, (24, 4), generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 4).long().numpy()
    emb0, lin0, size0 = net.emb.weight.detach().clone(), net.lin.weight.detach().clone(), model.get_flat(net).size
    dp = dpsgd.RecordLevelDP(num_records=24, batch_size=6, epochs=1, rounds=1, max_grad_norm=1.0, delta=1e-5,
                             noise_multiplier=1.0, freeze_embeddings=True)
    model.train_local(net, x, y, epochs=1, batch_size=6, lr=1e-2, seed=0, client=0, round_=1, private=dp)
    assert torch.equal(net.emb.weight, emb0) and not torch.equal(net.lin.weight, lin0)
    assert net.emb.weight.requires_grad and model.get_flat(net).size == size0
    assert dp.statement()["frozen_embeddings"] is True


def test_dp_noise_draws_from_its_own_stream():
    from medhe import rng as rngmod

    bundle, _, _ = _tiny()
    attached = _private(40).attach(bundle.module, torch.optim.Adam(bundle.module.parameters()), seed=5, client=2, round_=3)
    try:
        expected = rngmod.torch_generator(5, "dp-sgd-noise", 2, 3).get_state()
        assert torch.equal(attached.optimizer.generator.get_state(), expected)
    finally:
        attached.detach()
