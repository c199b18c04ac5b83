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


@pytest.mark.parametrize("method", ["medhe", "medhe_bfv", "medhe_no_he"])
def test_gaussian_shares_are_the_inprocess_ones(tabular_params, method):
    from medhe.fl.simulate import _noise_fn
    from medhe.flower.client_app import gaussian_shares

    spec = methods.get(method)
    w = [1 / 3] * 3
    a = gaussian_shares(spec, tabular_params, seed=5, round_=2, weights=w)
    b = _noise_fn(spec, tabular_params, seed=5, round_=2, weights=w)
    assert a == b
    np.testing.assert_array_equal(a(1, 50), b(1, 50))


def test_secure_noise_has_the_std_and_never_repeats():
    from medhe.flower.secure_noise import SecureGaussianShares, secure_normal

    shares = SecureGaussianShares(std=0.5)
    a, b = shares(0, 40_000), shares(0, 40_000)
    assert abs(a.std() - 0.5) < 0.01 and abs(a.mean()) < 0.01
    assert not np.array_equal(a, b)  # no seed: the same (client, round) draws anew
    z = secure_normal(200_000)
    assert abs(np.mean(np.abs(z) > 1.96) - 0.05) < 0.003  # a Gaussian tail, not a uniform one


def test_sparsifier_state_round_trips_through_records():
    from medhe.flower import state as st
    from medhe.sparsify import TopKSparsifier

    rng = np.random.default_rng(0)
    a = TopKSparsifier(size=100, sparsity=0.9, error_feedback=True, adaptive=True, ema_alpha=0.9)
    b = TopKSparsifier(size=100, sparsity=0.9, error_feedback=True, adaptive=True, ema_alpha=0.9)
    rec = RecordDict()
    for _ in range(3):
        u = rng.normal(size=100).astype(np.float32)
        st.load_sparsifier(rec, b)  # b is rebuilt from the records every round, as in a fresh process
        sa, sb = a.compress(u), b.compress(u)
        st.save_sparsifier(rec, b)
        b = TopKSparsifier(size=100, sparsity=0.9, error_feedback=True, adaptive=True, ema_alpha=0.9)
        np.testing.assert_array_equal(sa.indices, sb.indices)
        np.testing.assert_array_equal(sa.values, sb.values)
    st.load_sparsifier(rec, b)
    np.testing.assert_array_equal(a.residual, b.residual)
    assert a.threshold == b.threshold and a.density_history == b.density_history


def test_unsupported_methods_are_refused_with_the_reason(tabular_params):
    from medhe.flower.roles import UnsupportedMethod, check_supported

    with pytest.raises(UnsupportedMethod, match="adaptive clip bound"):
        check_supported(methods.get("medhe_no_dp"), tabular_params)
    with pytest.raises(UnsupportedMethod, match="alignment 'own'"):
        check_supported(methods.get("topk"), tabular_params)
    with pytest.raises(UnsupportedMethod, match="Skellam"):
        check_supported(methods.get("medhe_bfv_skellam"), tabular_params)
    check_supported(methods.get("medhe"), tabular_params)


@pytest.mark.parametrize("method", ["medhe", "medhe_bfv"])
def test_server_rejects_bytes_that_do_not_deserialise_and_names_the_client(tabular_params, tmp_path, method):
    from medhe.flower import keys, roles

    spec = methods.get(method)
    crypto = keys.client_crypto(spec, tabular_params, keys.write_key_file(spec, tabular_params, tmp_path / "k"))
    server = roles.ServerAggregator(spec, tabular_params, keys.setup_bytes(spec, tabular_params, crypto))
    good = roles.encode(spec, tabular_params, crypto, payload=_payload(), cid=0, weights=[0.5, 0.5], union=None,
                        noise=None, size=10).blobs
    with pytest.raises(ValueError, match="client 1: its ciphertext does not deserialise"):
        server.aggregate([good, [b"\x00garbage" * 10] * len(good)], clients=[0, 1])
    assert len(server.aggregate([good, good], clients=[0, 1])) == len(good)


def test_server_context_from_the_setup_holds_no_key(tabular_params, tmp_path):
    from medhe.flower import keys

    spec = methods.get("medhe")
    crypto = keys.client_crypto(spec, tabular_params, keys.write_key_file(spec, tabular_params, tmp_path / "k"))
    import tenseal as ts

    assert crypto.has_secret_key()
    assert not ts.context_from(keys.setup_bytes(spec, tabular_params, crypto)).has_secret_key()


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
    with pytest.raises(StateLost, match="asked for round 2 but its state is at round 0"):
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
