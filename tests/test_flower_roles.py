"""medhe.flower without a federation: the roles, the state records, the noise sources, the faults.

Fast (no Ray, no processes): the ClientApp handlers are called directly with a Flower Context.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("flwr", reason="Flower is not installed (pip install -e '.[flower]')")

from flwr.app import ConfigRecord, Context, Message, RecordDict  # noqa: E402

from medhe import params  # noqa: E402
from medhe.fl import methods  # noqa: E402


def test_env_switches_off_every_call_out():
    from medhe.flower.env import QUIET_ENV, flower_env

    env = flower_env({"FLWR_TELEMETRY_ENABLED": "1", "RAY_USAGE_STATS_ENABLED": "1"}, flwr_home="/x")
    assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["RAY_USAGE_STATS_ENABLED"] == "0"
    assert env["FLWR_DISABLE_UPDATE_CHECK"] == "1" and env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    assert env["FLWR_HOME"] == "/x" and set(QUIET_ENV) <= set(env)


def test_launchers_use_the_quiet_env():
    """The SuperLink is started without runtime installs and every launcher takes flower_env."""
    import inspect

    from medhe.flower import deploy, simulation

    assert "--disable-runtime-dependency-installation" in inspect.getsource(deploy.LocalFederation.start_superlink)
    assert "flower_env(" in inspect.getsource(deploy.LocalFederation.__init__)
    assert "flower_env(" in inspect.getsource(simulation.run)


@pytest.mark.parametrize("method", ["medhe", "medhe_bfv", "medhe_no_he", "medhe_bfv_skellam"])
def test_the_servers_plan_carries_the_inprocess_noise(tabular_params, method):
    from medhe.fl.server import make_clip_server
    from medhe.fl.simulate import _noise_fn
    from medhe.flower.server_app import Rounds

    spec = methods.get(method)
    w = [1 / 3] * 3
    plan = Rounds(spec, tabular_params, seed=5, weights=w, clip=make_clip_server(spec, tabular_params)).plan(2)
    a, b = plan.noise_shares(), _noise_fn(spec, tabular_params, seed=5, round_=2, weights=w)
    assert a == b
    assert plan.clip_bound == (None if spec.encryption == "none" else tabular_params.dp.clip_norm)


def test_a_secure_codec_draws_fresh_gaussian_shares_and_refuses_skellam(tabular_params):
    from medhe.fl.client import make_codec, make_keys
    from medhe.fl.plan import RoundPlan
    from medhe.fl.transport import GaussianShares, Payload, SkellamShares

    P = tabular_params
    v = Payload(values=np.zeros(50, dtype=np.float32))
    plan = RoundPlan(round=1, clients=[0, 1], weights=[0.5, 0.5], clip_bound=1.0,
                     noise=RoundPlan.noise_dict(GaussianShares(std=0.3, seed=1, round_=1)), seed=1)
    codecs = [make_codec(methods.get("medhe_no_he"), P, None, client=0, size=50, num_clients=2) for _ in range(3)]
    codecs[1].secure_noise = codecs[2].secure_noise = True
    sent = []
    for c in codecs:
        c.begin(plan, v)
        c.receive_union(None)
        sent.append(np.frombuffer(c.encode(0, 50)[0], dtype="<f4"))
    np.testing.assert_array_equal(sent[0], GaussianShares(std=0.3, seed=1, round_=1)(0, 50))  # seeded: replayable
    assert not np.array_equal(sent[1], sent[0]) and not np.array_equal(sent[1], sent[2])
    assert abs(np.std(np.concatenate(sent[1:])) - 0.3) < 0.1
    bfv = make_codec(methods.get("medhe_bfv_skellam"), P, make_keys(methods.get("medhe_bfv"), P), client=0, size=50,
                     num_clients=2)
    bfv.secure_noise = True
    skellam = RoundPlan(round=1, clients=[0, 1], weights=[0.5, 0.5], clip_bound=1.0, seed=1,
                        noise=RoundPlan.noise_dict(SkellamShares(noise_multiplier=1.0, sensitivity=0.5, seed=1,
                                                                 round_=1)))
    bfv.begin(skellam, v)
    with pytest.raises(ValueError, match="secure noise source exists for Gaussian shares only"):
        bfv.receive_union(None)


def test_secure_noise_has_the_std_and_never_repeats():
    from medhe.fl.secure_noise import SecureGaussianShares, secure_normal

    shares = SecureGaussianShares(std=0.5)
    a, b = shares(0, 40_000), shares(0, 40_000)
    assert abs(a.std() - 0.5) < 0.01 and abs(a.mean()) < 0.01
    assert not np.array_equal(a, b)  # no seed: the same (client, round) draws anew
    z = secure_normal(200_000)
    assert abs(np.mean(np.abs(z) > 1.96) - 0.05) < 0.003  # a Gaussian tail, not a uniform one


def test_client_state_round_trips_through_records(tabular_params):
    """A client rebuilt from context.state every round (as a fresh process is) sends what one that lives on sends."""
    from medhe.fl.client import Client
    from medhe.flower import state as st

    rng = np.random.default_rng(0)
    spec = methods.get("medhe")
    a = Client(0, np.arange(10), spec=spec, P=tabular_params, size=100)
    rec = RecordDict()
    for _ in range(3):
        b = Client(0, np.arange(10), spec=spec, P=tabular_params, size=100)
        saved = st.get_tree(rec, "client")
        if saved is not None:
            b.load_state_dict(saved)
        u = rng.normal(size=100).astype(np.float32)
        (pa, _), (pb, _) = a.prepare(u), b.prepare(u)
        st.put_tree(rec, "client", b.state_dict())
        np.testing.assert_array_equal(pa.indices, pb.indices)
        np.testing.assert_array_equal(pa.values, pb.values)
    b = Client(0, np.arange(10), spec=spec, P=tabular_params, size=100)
    b.load_state_dict(st.get_tree(rec, "client"))
    np.testing.assert_array_equal(a.sparsifier.residual, b.sparsifier.residual)
    assert a.sparsifier.threshold == b.sparsifier.threshold


def test_state_trees_keep_arrays_nested_values_and_none():
    from medhe.flower import state as st

    tree = {"x": np.arange(6, dtype=np.int64).reshape(2, 3), "n": None, "f": np.float64(0.5),
            "nested": {"l": [1, np.array([0.25], dtype=np.float32)], "s": "a"}}
    rec = RecordDict()
    st.put_tree(rec, "t", tree)
    back = st.get_tree(rec, "t")
    np.testing.assert_array_equal(back["x"], tree["x"])
    assert back["x"].dtype == np.int64 and back["n"] is None and back["f"] == 0.5 and back["nested"]["s"] == "a"
    np.testing.assert_array_equal(back["nested"]["l"][1], [0.25])
    st.drop(rec, "t")
    assert st.get_tree(rec, "t") is None and len(rec) == 0


UNPACKED_CKKS = ("he_only", "he_classifier_only", "medhe_no_packing", "medhe_no_dp_no_packing")


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_every_method_runs_through_the_flower_apps_as_in_process(tabular_params, tmp_path, method):
    """The ServerApp's loop and the ClientApp's handlers (one Context per site, messages delivered in this
    process: tests/flower_direct.py) give the in-process engine's model, history and bytes."""
    import pandas as pd
    from flower_direct import run

    from medhe.fl import simulate

    out = run(tabular_params, method=method, seed=3, work=tmp_path)
    ref = simulate.run(tabular_params, method=method, seed=3, progress=False)
    got = np.load(out / "final_weights.npy")
    if method in UNPACKED_CKKS:  # CKKS's approximation error on the sum
        np.testing.assert_allclose(got, ref.final_weights, rtol=0, atol=1e-5)
    else:  # plaintext sums in the same order, and BFV's and packed CKKS's exact integer sums
        np.testing.assert_array_equal(got, ref.final_weights)
    hist, want = pd.read_csv(out / "history.csv"), pd.DataFrame(ref.history)
    for col in ("f1_macro", "density", "train_loss", "update_norm", "sent_norm_before_clip", "clip_norm", "epsilon_rdp", "epsilon_record_max",
                "model_change_l2", "quant_zero_frac"):
        if col in want:
            np.testing.assert_allclose(hist[col], want[col], rtol=1e-6, atol=1e-5 if method in UNPACKED_CKKS else 0,
                                       err_msg=col)
    by = ["round", "direction", "category"]
    got_b = pd.read_csv(out / "bytes.csv").groupby(by)["bytes"].sum()
    want_b = pd.DataFrame(ref.ledger.rows).groupby(by)["bytes"].sum()
    assert list(got_b.index) == list(want_b.index)
    np.testing.assert_allclose(got_b, want_b, rtol=0.02, atol=400)  # fresh keys: SEAL's compression jitters
    rec = json.loads((out / "run.json").read_text())
    if "privacy" in ref.record:
        assert rec["privacy"]["epsilon_rdp"] == ref.record["privacy"]["epsilon_rdp"]
    if "privacy_record_level" in ref.record:
        assert rec["privacy_record_level"]["epsilon_max"] == ref.record["privacy_record_level"]["epsilon_max"]


@pytest.mark.parametrize("method", ["medhe", "medhe_bfv"])
def test_keys_from_the_key_file_encrypt_what_the_server_adds_and_the_setup_holds_no_key(tabular_params, tmp_path,
                                                                                      method):
    from medhe.fl.client import make_codec
    from medhe.fl.plan import RoundPlan
    from medhe.fl.server import ClientMessageError, make_aggregator
    from medhe.flower import keys

    spec = methods.get(method)
    path = keys.write_key_file(spec, tabular_params, tmp_path / "k")
    assert path.stat().st_mode & 0o777 == 0o600
    codec = make_codec(spec, tabular_params, keys.client_keys(spec, tabular_params, path), client=0, size=10,
                       num_clients=2)
    setup = codec.setup_message()
    assert path.read_bytes()[-4096:] not in setup
    if method == "medhe":
        import tenseal as ts

        assert not ts.context_from(setup).has_secret_key()
    server = make_aggregator(spec, tabular_params, setup, size=10)
    codec.begin(RoundPlan(round=1, clients=[0, 1], weights=[0.5, 0.5], clip_bound=1.0), _payload())
    codec.receive_union(None)
    good = codec.encode(0, 10)
    with pytest.raises(ClientMessageError, match="client 1: ciphertext 0 does not deserialise"):
        server.aggregate([good, [b"\x00garbage" * 10] * len(good)], clients=[0, 1])
    assert len(server.aggregate([good, good], clients=[0, 1])) == len(good)
    with pytest.raises(FileNotFoundError, match="copy the clients"):
        keys.client_keys(spec, tabular_params, tmp_path / "missing.key")


def _payload():
    from medhe.fl.transport import Payload

    return Payload(values=np.linspace(-0.1, 0.1, 10).astype(np.float32), indices=None)


def test_a_site_that_lost_its_state_refuses_the_round(tabular_params):
    """A SuperNode restarted between rounds comes back with an empty context.state: it must not
    train from a fresh model and residual, but fail the round (the server then names it)."""
    from medhe.flower.client_app import StateLost, encode

    ctx = Context(run_id=1, node_id=7, node_config={"partition-id": 2, "num-partitions": 3}, state=RecordDict(),
                  run_config={})
    from flwr.app import Metadata

    meta = Metadata(run_id=1, message_id="m", src_node_id=1, dst_node_id=7, reply_to_message_id="", group_id="2",
                    created_at=0.0, ttl=3600.0, message_type="train.encode")
    msg = Message(content=RecordDict({"config": ConfigRecord({"round": 2, "weights": [1 / 3] * 3})}), metadata=meta)
    with pytest.raises(StateLost, match="partition 2: no run state"):
        encode(msg, ctx)
    ctx.state["medhe.run"] = ConfigRecord({"params-json": json.dumps(tabular_params.to_dict()), "method": "medhe",
                                           "seed": 1, "round": 0, "step": "setup", "noise-source": "seeded"})
    with pytest.raises(StateLost, match="encode step of round 2 but its state is at round 0"):
        encode(msg, ctx)


def test_scale_refuses_more_clients_than_records_and_plots_from_the_csv(tabular_params, tmp_path):
    from medhe.flower import scale

    with pytest.raises(ValueError, match=r"client counts \[500\] exceed the 455 training records"):
        scale.measure(tabular_params, method="medhe", clients=[5, 500], out_dir=tmp_path)
    rows = [{"engine": "flower", "method": "medhe", "num_clients": n, "rounds": 2, "pack_batch": 3,
             "time_round": 1.0 * n, "time_aggregate": 0.01 * n, "peak_rss_mb_server": 500.0,
             "peak_rss_mb_all_processes": 2000.0 + n, "mib_up_per_client_round": 0.3,
             "mib_down_per_client_round": 0.3, "flower_mib_per_client_round": 0.62, "wall_s": 60.0} for n in (5, 100)]
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "scale.csv", index=False)
    fig = scale.plot(tmp_path / "scale.csv")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 2]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), [5, 100])


@pytest.mark.parametrize("n, batch", [(5, 4), (100, 3), (400, 2)])
def test_scale_packing_batch_fits_the_carry_bits(tabular_params, n, batch):
    from medhe.flower.scale import packed_batch

    assert packed_batch(tabular_params, num_clients=n) == batch


@pytest.mark.slow
def test_the_text_task_runs_through_the_flower_apps_as_in_process(tiny_text_params, tmp_path):
    """MiniLM on Drugs.com reviews: each site tokenises its own records, and the model is the in-process one."""
    from flower_direct import run

    from medhe.fl import simulate

    out = run(tiny_text_params, method="medhe_no_he", seed=4, work=tmp_path)  # encryption: the tabular tests
    ref = simulate.run(tiny_text_params, method="medhe_no_he", seed=4, progress=False)
    np.testing.assert_array_equal(np.load(out / "final_weights.npy"), ref.final_weights)
