"""The ``global`` alignment (one public mask, no index set travels), adaptive clipping in a run, and the
rounds/bytes-to-target rule. Tabular task: whole federated runs in seconds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from medhe import comm, fl, params, targets
from medhe.fl import methods
from medhe.fl.transport import Payload, PlainTransport
from medhe.sparsify import TopKSparsifier, global_mask


# --------------------------------------------------------------------------- the public mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_global_mask_exploits_the_largest_public_entries_and_explores_the_rest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=1000)
    score[rng.choice(1000, 600, replace=False)] = 0.0  # the aggregate is zero off the previous mask
    mask = global_mask(score, size=1000, k=100, explore=0.3, rng=np.random.default_rng(7))
    assert mask.size == 100 and np.all(np.diff(mask) > 0)
    reference_top = np.argsort(-np.abs(score), kind="stable")[:70]  # independent: a full sort
    assert set(reference_top) <= set(mask.tolist())
    # same public seed, same mask: every client derives it alike
    again = global_mask(score, size=1000, k=100, explore=0.3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(mask, again)


def test_global_mask_in_round_one_is_all_random_and_k_exact() -> None:
    a = global_mask(None, size=50, k=7, explore=0.0, rng=np.random.default_rng(1))
    b = global_mask(np.zeros(50), size=50, k=7, explore=0.0, rng=np.random.default_rng(2))
    assert a.size == b.size == 7 and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="explore"):
        global_mask(None, size=50, k=7, explore=1.5, rng=np.random.default_rng(1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_error_feedback_at_a_given_mask_loses_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sp = TopKSparsifier(size=200, sparsity=0.9, error_feedback=True, adaptive=False)
    total_in = np.zeros(200)
    total_sent = np.zeros(200)
    for _ in range(4):
        update = rng.normal(size=200)
        mask = np.sort(rng.choice(200, 20, replace=False))
        msg = sp.compress(update, mask=mask)
        np.testing.assert_array_equal(msg.indices, mask)
        total_in += update
        total_sent[msg.indices] += msg.values
    np.testing.assert_allclose(total_sent + sp.residual, total_in, atol=1e-12)


def test_a_mask_needs_the_exact_rule() -> None:
    sp = TopKSparsifier(size=10, sparsity=0.5, adaptive=True)
    with pytest.raises(ValueError, match="adaptive=False"):
        sp.compress(np.ones(10), mask=np.arange(5))


# --------------------------------------------------------------------------- the transport


def test_global_alignment_sends_no_index_set_and_sums_slot_by_slot() -> None:
    mask = np.array([1, 4, 7], dtype=np.int64)
    vals = [np.array([1.0, 2.0, 3.0], dtype=np.float32), np.array([-1.0, 0.5, 4.0], dtype=np.float32)]
    ledger = comm.ByteLedger()
    res = PlainTransport(size=10, alignment="global").round([Payload(v, mask) for v in vals], weights=[0.25, 0.75],
                                                            noise=None, ledger=ledger, round_=1)
    expected = np.zeros(10)
    expected[[1, 4, 7]] = 0.25 * vals[0] + 0.75 * vals[1]  # written out, not the transport's helpers
    np.testing.assert_allclose(res.mean_update, expected, rtol=1e-6)
    assert ledger.breakdown(round_=1, direction="up").get("index", 0) == 0
    assert ledger.breakdown(round_=1, direction="down").get("index", 0) == 0


def test_global_alignment_refuses_clients_with_different_masks() -> None:
    ledger = comm.ByteLedger()
    payloads = [Payload(np.ones(2, np.float32), np.array([0, 1])), Payload(np.ones(2, np.float32), np.array([0, 2]))]
    with pytest.raises(ValueError, match="client 1"):
        PlainTransport(size=4, alignment="global").round(payloads, weights=[0.5, 0.5], noise=None, ledger=ledger,
                                                         round_=1)


# --------------------------------------------------------------------------- methods


def test_method_spec_refuses_adaptive_clipping_under_dp_and_global_with_the_ema() -> None:
    with pytest.raises(ValueError, match="adaptive"):
        dataclasses.replace(methods.get("medhe"), name="x", clip_mode="adaptive")
    with pytest.raises(ValueError, match="global"):
        dataclasses.replace(methods.get("medhe_no_dp"), name="x", alignment="global")  # EMA threshold still on
    with pytest.raises(ValueError, match="clip_mode"):
        dataclasses.replace(methods.get("medhe_no_dp"), name="x", clip_mode="median")


def test_no_dp_ablation_differs_from_medhe_in_noise_and_clip_mode_only() -> None:
    a, b = methods.get("medhe"), methods.get("medhe_no_dp")
    differ = {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}
    assert differ == {"name", "noise", "clip_mode"}
    c1 = methods.get("medhe_no_dp_c1")
    assert {f.name for f in dataclasses.fields(b) if getattr(b, f.name) != getattr(c1, f.name)} == {"name", "clip_mode"}


@pytest.mark.parametrize("variant, expected", [
    ("topk", ("topk", {})),
    ("medhe_global_no_dp-s0.99", ("medhe_global_no_dp", {"sparsify.sparsity": 0.99})),
    ("medhe_bfv_global_no_dp-b4", ("medhe_bfv_global_no_dp", {"bfv.value_bits": 4, "ckks.pack_bits": 4})),
])
def test_parse_variant(variant, expected) -> None:
    assert methods.parse_variant(variant) == expected


@pytest.mark.parametrize("bad", ["nosuch", "topk-x3", "topk-sabc"])
def test_parse_variant_refuses_what_it_cannot_read(bad) -> None:
    with pytest.raises(ValueError):
        methods.parse_variant(bad)


# --------------------------------------------------------------------------- whole runs


@pytest.fixture
def five_clients(tabular_params: params.Params) -> params.Params:
    raw = tabular_params.to_dict()
    raw["data"]["num_clients"] = 5
    raw["train"]["rounds"] = 3
    raw["ckks"]["pack_batch"] = 3
    return params.load_dict(raw)


def test_adaptive_clipping_in_a_run_records_its_bound_and_counts_its_messages(five_clients) -> None:
    res = fl.run(five_clients, method="medhe_bfv_global_no_dp", seed=3, progress=False)
    rows = res.history[1:]
    norms = [r["sent_norm_before_clip"] for r in rows]
    bounds = [r["clip_norm"] for r in rows]
    assert all(b > 0 for b in bounds) and len(set(bounds)) > 1  # the bound moves
    assert all(0 <= r["clip_removed_frac"] < 1 for r in rows)
    assert rows[0]["clipped_clients_frac"] == 0.0  # round 1: the 0.9-quantile of 5 norms is the largest
    assert all(n > 0 for n in norms)
    clip_up = res.ledger.breakdown(round_=1, direction="up")["clip"]
    assert clip_up == 5 * 4 + 5 * 1  # one float32 norm per client (calibration), then one bit byte each
    assert res.ledger.breakdown(round_=2, direction="up")["clip"] == 5
    assert res.ledger.breakdown(round_=1, direction="up").get("index", 0) == 0  # global: no index set


def test_global_ckks_and_bfv_learn_the_same_model(five_clients) -> None:
    """Both sums are exact at 8 bits, so the two encrypted global methods give the same model."""
    a = fl.run(five_clients, method="medhe_global_no_dp", seed=4, progress=False)
    b = fl.run(five_clients, method="medhe_bfv_global_no_dp", seed=4, progress=False)
    np.testing.assert_allclose(a.final_weights, b.final_weights, atol=1e-6)


def test_a_run_stops_at_the_target_but_not_before_min_rounds(five_clients) -> None:
    full = fl.run(five_clients, method="fedavg", seed=5, progress=False)
    f1 = [r["f1_macro"] for r in full.history]
    target = f1[1]  # reached in round 1: a macro-F1 equal to the target reaches it
    short = fl.run(five_clients, method="fedavg", seed=5, progress=False, target_macro_f1=target, min_rounds=2)
    assert [r["round"] for r in short.history] == [0, 1, 2]
    assert short.record["target"] == {"macro_f1": target, "reached_round": 1, "round_budget": 3}
    assert max(f1) < 1.0
    never = fl.run(five_clients, method="fedavg", seed=5, progress=False, target_macro_f1=max(f1) + 1e-9)
    assert never.record["target"]["reached_round"] is None
    assert len(never.history) == 4  # the whole budget


# --------------------------------------------------------------------------- the rule


def _history(f1, up=100.0, down=40.0):
    return pd.DataFrame({"round": range(len(f1)), "f1_macro": f1,
                         "bytes_up_per_client": [0.0] + [up] * (len(f1) - 1),
                         "bytes_down_per_client": [0.0] + [down] * (len(f1) - 1)})


def test_to_target_counts_rounds_and_bytes_up_to_the_first_hit() -> None:
    r = targets.to_target(_history([0.4, 0.5, 0.6, 0.8, 0.7, 0.9]), target=0.75)
    assert (r["reached"], r["rounds_to_target"], r["bytes_up_to_target"], r["bytes_updown_to_target"]) == (True, 3, 300.0, 420.0)
    assert r["f1_macro_r3"] == 0.8 and r["rounds_run"] == 5
    exact = targets.to_target(_history([0.4, 0.5, 0.6, 0.8, 0.7, 0.9]), target=0.8)  # reaching = at or above
    assert exact["rounds_to_target"] == 3 and exact["bytes_up_to_target"] == 300.0


def test_to_target_not_reached_reports_no_invented_number() -> None:
    r = targets.to_target(_history([0.4, 0.5, 0.6]), target=0.75)
    assert r["reached"] is False and np.isnan(r["rounds_to_target"]) and np.isnan(r["bytes_up_to_target"])


def test_to_target_table_reads_each_seeds_reference(tmp_path, five_clients) -> None:
    raw = five_clients.to_dict()
    raw["profile"] = "t"
    P = params.load_dict(raw)
    for variant, seed in (("fedavg", 1), ("medhe_global_no_dp", 1), ("medhe_no_packing", 1)):
        fl.run(P, method=variant, seed=seed, progress=False, out_dir=tmp_path / "t" / "target" / f"{variant}_s{seed}")
    table, curve = targets.to_target_table("t", fraction=0.9, root=tmp_path)
    ref = pd.read_csv(tmp_path / "t" / "target" / "fedavg_s1" / "history.csv")["f1_macro"].iloc[-1]
    assert table["target"].tolist() == [pytest.approx(0.9 * ref)] * 3
    assert set(table["variant"]) == {"fedavg", "medhe_global_no_dp", "medhe_no_packing"}
    status = table.set_index("variant")["epsilon_status"].to_dict()
    assert status == {"fedavg": "no DP", "medhe_global_no_dp": "no DP",
                      "medhe_no_packing": "Gaussian accountant (RDP, PLD)"}
    dp = pd.read_csv(tmp_path / "t" / "target" / "medhe_no_packing_s1" / "history.csv")
    assert table.set_index("variant").loc["medhe_no_packing", "epsilon"] == dp["epsilon_rdp"].iloc[-1] > 0
    assert curve.groupby("variant")["cum_bytes_up_per_client"].apply(lambda s: s.is_monotonic_increasing).all()
    with pytest.raises(FileNotFoundError, match="fedavg_s2"):
        fl.run(P, method="topk", seed=2, progress=False, out_dir=tmp_path / "t" / "target" / "topk_s2")
        targets.to_target_table("t", fraction=0.9, root=tmp_path)


def test_target_curves_plot_one_line_per_variant_truncated_to_the_rounds_every_seed_ran() -> None:
    from medhe import plots

    rows = []
    for variant, stop in (("a", {1: 3, 2: 2}), ("b", {1: 3, 2: 3})):
        for seed, last in stop.items():
            for r in range(last + 1):
                rows.append({"variant": variant, "seed": seed, "round": r, "f1_macro": 0.4 + 0.1 * r,
                             "cum_bytes_up_per_client": 400.0 * r, "target": 0.6})
    curves = pd.DataFrame(rows)
    table = pd.DataFrame({"variant": ["a", "b"], "num_params": [100, 100], "target": [0.6, 0.6]})
    fig = plots.target_curves(curves, table, majority_f1=0.4, claimed=(10.0, 0.9))
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert lines["a (n=2)"].get_xdata().tolist() == [4.0, 8.0]  # seed 2 of a stopped at round 2; round 0 has 0 bytes
    assert lines["b (n=2)"].get_xdata().tolist() == [4.0, 8.0, 12.0]
    assert "target (mean over seeds)" in lines and "majority class (learned nothing)" in lines


def test_report_table_says_not_reached_and_averages_only_the_seeds_that_reached() -> None:
    from medhe import profile_report

    table = pd.DataFrame({
        "variant": ["topk", "topk", "medhe_no_packing", "medhe", "medhe_dpsgd", "medhe_no_dp"],
        "seed": [1, 2, 1, 1, 1, 1],
        "reached": [True, False, False, False, False, False], "rounds_to_target": [3] + [np.nan] * 5,
        "mib_up_to_target": [12.5] + [np.nan] * 5, "f1_macro_r3": [0.7, 0.5, 0.4, 0.4, 0.4, 0.4],
        "rounds_run": [3, 8, 8, 8, 8, 8], "epsilon": [np.nan, np.nan, 171.4, np.nan, np.nan, np.nan],
        "epsilon_record": [np.nan] * 4 + [2.96, np.nan],
        "epsilon_status": ["no DP", "no DP", "Gaussian accountant (RDP, PLD)",
                           "not covered: Gaussian shares rounded per client (packed CKKS)", targets.RECORD_LEVEL,
                           "no DP"]})
    text = profile_report.to_target_table(table)
    row = {v: next(line for line in text.splitlines() if line.startswith(f"| {v} ")) for v in table["variant"]}
    assert "1/2" in row["topk"] and "12.5" in row["topk"] and "| 3 " in row["topk"].replace("3.0", "3 ")
    assert row["topk"].endswith("| no DP |")
    assert "0/1" in row["medhe_no_packing"] and "not reached in 8" in row["medhe_no_packing"]
    assert row["medhe_no_packing"].endswith("| 171.4 |")
    # read from the runs, not from the method's name: a DP method whose epsilon no accountant covers is
    # not "no DP", record-level DP-SGD has its own epsilon, and a DP method run without noise is "no DP"
    assert row["medhe"].endswith("| not covered |")
    assert row["medhe_dpsgd"].endswith("| 3.0 per record |")
    assert row["medhe_no_dp"].endswith("| no DP |")
    assert profile_report.to_target_table(table.drop(columns=["epsilon_record", "epsilon_status"])).count(
        "not recorded") == 4
    assert "not yet measured" in profile_report.to_target_table(table.iloc[0:0])


def test_a_reference_at_the_majority_class_defines_no_target(tmp_path) -> None:
    """FedAvg stuck at the majority class: 0.95 x its macro-F1 would be met by an untrained model."""
    import json

    folder = tmp_path / "p" / "target"
    for variant, f1 in (("fedavg", [0.52, 0.39, 0.39]), ("topk", [0.52, 0.46, 0.39])):
        run = folder / f"{variant}_s1"
        run.mkdir(parents=True)
        _history(f1).assign(method=variant).to_csv(run / "history.csv", index=False)
        (run / "run.json").write_text(json.dumps({"method": variant, "params": {"sparsify": {"sparsity": 0.9}},
                                                  "num_params": 10}))
        (run / "metrics.json").write_text(json.dumps({"f1_macro": f1[-1], "majority_f1_macro": 0.39}))
    table, _ = targets.to_target_table("p", fraction=0.95, root=tmp_path)
    assert not table["reference_learned"].any() and not table["reached"].any()
    assert table["target"].isna().all()
