"""The MedHE protocol on Flower 1.42 (medhe.flower): simulation engine against the in-process engine.

One Flower simulation (one Ray start-up, ~20-45 s on 2 cores) runs medhe_bfv and medhe on the
tabular task with 6 sites; the tests compare it with the in-process engine at the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

flwr = pytest.importorskip("flwr", reason="Flower is not installed (pip install -e '.[flower]')")

from medhe import params  # noqa: E402
from medhe.fl import simulate  # noqa: E402

METHODS = ("medhe_bfv", "medhe")
OTHERS = ("fedavg", "he_only", "medhe_global")  # plaintext dense, unpacked CKKS dense, the public-mask alignment
TABULAR = {
    "data": {"dataset": "breast_cancer", "num_clients": 6},
    "model": {"name": "mlp", "hidden": 16},
    "train": {"rounds": 2, "local_epochs": 1, "batch_size": 16, "lr": 1e-2},
    "ckks": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40, 60]},
}


DROP = {"seed": 7, "partition": 2, "round": 2, "step": "train.values"}


@pytest.fixture(scope="module")
def flower_runs(tmp_path_factory) -> Path:
    """One simulation: medhe_bfv and medhe (seeded noise), medhe with secure noise, then a medhe_bfv run
    in which partition 2 drops out in round 2 (the last run: it fails the simulation)."""
    from medhe.flower import simulation

    out = tmp_path_factory.mktemp("flower-sim")
    runs = [*METHODS, *OTHERS, {"label": "medhe-secure", "method": "medhe", "noise-source": "secure"},
            {"label": "dropout", "method": "medhe_bfv", "seed": DROP["seed"]}]
    with pytest.raises(RuntimeError) as failed:
        simulation.run(params.load_dict(TABULAR), methods=runs, out_dir=out, dump_messages=True, fault=DROP)
    (out / "failure.txt").write_text(str(failed.value))
    return out


@pytest.fixture(scope="module")
def inprocess_runs():
    P = params.load_dict(TABULAR)
    return {m: simulate.run(P, method=m, progress=False) for m in (*METHODS, *OTHERS)}


def _bytes_by(rows) -> pd.Series:
    return pd.DataFrame(rows).groupby(["round", "direction", "category"])["bytes"].sum()


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_flower_simulation_gives_the_inprocess_model(flower_runs, inprocess_runs, method):
    final = np.load(flower_runs / method / "final_weights.npy")
    expected = inprocess_runs[method].final_weights
    if method == "medhe_bfv":
        np.testing.assert_array_equal(final, expected)  # BFV: exact integer sums
    else:  # packed CKKS decodes the integer sums exactly too; allow CKKS error all the same
        np.testing.assert_allclose(final, expected, rtol=0, atol=1e-6)
    hist = pd.read_csv(flower_runs / method / "history.csv")
    ref = pd.DataFrame(inprocess_runs[method].history)
    np.testing.assert_allclose(hist["f1_macro"], ref["f1_macro"], rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("method", OTHERS)
def test_other_alignments_and_transports_give_the_inprocess_model(flower_runs, inprocess_runs, method):
    final = np.load(flower_runs / method / "final_weights.npy")
    expected = inprocess_runs[method].final_weights
    if method == "he_only":  # unpacked CKKS: the sum carries CKKS's approximation error
        np.testing.assert_allclose(final, expected, rtol=0, atol=1e-5)
        assert not np.array_equal(final, np.load(flower_runs / "fedavg" / "final_weights.npy"))
    else:  # plaintext float32 sums in the same order, and packed CKKS's exact integer sums
        np.testing.assert_array_equal(final, expected)
    got = pd.read_csv(flower_runs / method / "bytes.csv")
    assert got["bytes"].sum() == pytest.approx(pd.DataFrame(inprocess_runs[method].ledger.rows)["bytes"].sum(),
                                               rel=0.005)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_flower_ledger_matches_inprocess_bytes(flower_runs, inprocess_runs, method):
    got = _bytes_by(pd.read_csv(flower_runs / method / "bytes.csv").to_dict("records"))
    want = _bytes_by(inprocess_runs[method].ledger.rows)
    assert list(got.index) == list(want.index)  # the same messages, rounds and categories
    exact = [i for i in want.index if i[2] in ("index", "context")]
    assert (got[exact] == want[exact]).all()
    cts = [i for i in want.index if i[2] == "ciphertext"]
    # ciphertexts: a fresh key each run, so a ~331 kB zstd-compressed ciphertext's size jitters by up to
    # ~1 % (and the downlink repeats one ciphertext per site); a missing or extra ciphertext in a cell
    # of at most 30 would be off by more than 3 %
    rel = (got[cts] - want[cts]).abs() / want[cts]
    assert rel.max() < 0.03, rel


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_no_message_carries_the_secret_key(flower_runs, method):
    import tenseal as ts

    key = next((flower_runs / method / "work").glob("*.key")).read_bytes()
    dumped = sorted((flower_runs / method / "messages").iterdir())
    assert any("setup-up" in p.name and p.suffix == ".bin" for p in dumped)
    for p in dumped:
        data = p.read_bytes()
        assert key[:4096] not in data and key[-4096:] not in data, p.name
        if p.suffix == ".bin" and "setup" in p.name and method == "medhe":
            assert not ts.context_from(data).has_secret_key(), p.name  # the server's context: parameters only


@pytest.mark.slow
def test_flower_wire_bytes_cover_the_ledger(flower_runs):
    """Flower's serialised objects carry every ledger byte plus its own framing (a few hundred bytes per message)."""
    for method in METHODS:
        rec = json.loads((flower_runs / method / "run.json").read_text())
        assert rec["engine"] == "flower" and rec["privacy"]["noise_source_by_site"]["0"] == "seeded"
        # the ledger counts one download per site; Flower sends it to each site too
        assert rec["bytes_ledger_total"] <= rec["flower_bytes_total"] < 1.05 * rec["bytes_ledger_total"] + 200_000


@pytest.mark.slow
def test_a_site_dropping_out_fails_the_round_and_names_it(flower_runs):
    msg = (flower_runs / "failure.txt").read_text()
    assert "RoundFailed: round 2, step 'train.values': errors from {2:" in msg and "dropped out" in msg
    assert "no reply from" not in msg  # the site answered with its error; no other site is blamed
    assert not (flower_runs / "dropout" / "run.json").exists()  # no result of a run that did not complete


@pytest.mark.slow
def test_secure_noise_is_recorded_and_not_the_seeded_draw(flower_runs, inprocess_runs):
    rec = json.loads((flower_runs / "medhe-secure" / "run.json").read_text())
    assert set(rec["privacy"]["noise_source_by_site"].values()) == {"secure"}
    final = np.load(flower_runs / "medhe-secure" / "final_weights.npy")
    assert not np.allclose(final, inprocess_runs["medhe"].final_weights, atol=1e-6)  # a fresh draw
    hist = pd.read_csv(flower_runs / "medhe-secure" / "history.csv")
    assert hist["f1_macro"].iloc[-1] > 0.5  # still trains: the noise has the calibrated std


@pytest.mark.slow
def test_flower_result_reads_back_as_a_run_result(flower_runs, inprocess_runs, tmp_path):
    from medhe.fl.simulate import write
    from medhe.flower.engine import load_result

    res = load_result(flower_runs / "medhe_bfv")
    ref = inprocess_runs["medhe_bfv"]
    assert [r["round"] for r in res.history] == [r["round"] for r in ref.history]
    assert res.final["f1_macro"] == ref.final["f1_macro"]
    assert res.ledger.total(round_=1, category="index") == ref.ledger.total(round_=1, category="index")
    write(res, tmp_path)  # the in-process engine's files, from the Flower run
    assert json.loads((tmp_path / "metrics.json").read_text())["engine"] == "flower"


def test_fl_run_follows_pipeline_engine(tabular_params):
    import dataclasses

    from medhe import fl

    res = fl.run(tabular_params, method="fedavg", progress=False)  # default: in-process
    assert res.record.get("engine", "inprocess") == "inprocess" and len(res.history) == 3
    flower_params = dataclasses.replace(tabular_params,
                                        pipeline=dataclasses.replace(tabular_params.pipeline, engine="flower"))
    with pytest.raises(ValueError, match="does not take \\['target_macro_f1'\\]"):
        fl.run(flower_params, method="medhe", target_macro_f1=0.9)
    with pytest.raises(ValueError, match="pipeline.engine must be one of"):
        params.load_dict({"pipeline": {"engine": "ray"}})


TEXT = {"data": {"dataset": "drugscom", "max_train": 30, "max_test": 16, "num_clients": 5},
        "model": {"name": "minilm", "max_length": 24},
        "train": {"rounds": 1, "local_epochs": 1, "batch_size": 8, "lr": 1e-4}}


@pytest.mark.slow
def test_the_text_task_on_five_simulated_sites_gives_the_inprocess_model(tmp_path):
    """MiniLM on Drugs.com reviews, 5 virtual SuperNodes on Ray, each tokenising its own records."""
    from medhe.flower import simulation

    P = params.load_dict(TEXT)
    simulation.run(P, methods=["medhe"], out_dir=tmp_path)
    ref = simulate.run(P, method="medhe", progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "medhe" / "final_weights.npy"), ref.final_weights)
    hist = pd.read_csv(tmp_path / "medhe" / "history.csv")
    assert hist["f1_macro"].iloc[-1] == ref.final["f1_macro"] and len(hist) == 2
