"""The claims ledger: for every claim of the paper, claimed vs measured and a verdict by a stated rule.

Claimed values come only from ``claims/paper.yaml``; measured values only from result
files under ``results/<profile>/`` written by earlier stages. Each claim has one rule
function below (``RULES``); its docstring is the rule, copied into the ledger.

Verdicts: ``reproduced``, ``not reproduced``, or ``not testable here`` (with the reason,
e.g. the claim is about the paper's data and model, or the stage did not run in this
profile). Tolerances are constants here, stated in each rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import yaml

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable here"
BYTES_REL_TOL = 0.10  # byte figures: within 10 % of the claimed value
MIB = 2**20


@dataclass
class LedgerRow:
    """One row of the claims ledger."""

    id: str
    claim: str
    claimed: str
    measured: str
    verdict: str
    rule: str
    profile: str
    configuration: str
    source: str
    note: str = ""


class Measured:
    """Lazy access to the result files of one profile; a missing file becomes a reason, not a crash."""

    def __init__(self, root: str | Path, profile: str) -> None:
        self.root = Path(root)
        self.profile = profile
        self.base = self.root / profile

    def path(self, rel: str) -> Path:
        return self.base / rel

    def csv(self, rel: str) -> pd.DataFrame | None:
        p = self.path(rel)
        return pd.read_csv(p) if p.is_file() else None

    def json(self, rel: str) -> Any:
        p = self.path(rel)
        return json.loads(p.read_text()) if p.is_file() else None


def load_claims(path: str | Path) -> list[dict[str, Any]]:
    """The claims file as a list of dicts (id, claim, claimed)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"claims file {str(p)!r} not found")
    claims = yaml.safe_load(p.read_text())["claims"]
    ids = [c["id"] for c in claims]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate claim ids in {p}: {ids}")
    return claims


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) >= 1e4 or abs(x) < 1e-3 else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def _within(measured: float, claimed: float, rel: float = BYTES_REL_TOL) -> bool:
    return abs(measured - claimed) <= rel * abs(claimed)


def _missing(what: str, stage: str) -> tuple[str, str, str]:
    return "n/a", NOT_TESTABLE, f"{what} not measured in this profile (stage `{stage}`)"


def _comm(m: Measured, group: str = "papersize") -> pd.DataFrame | None:
    df = m.csv("comm/bytes.csv")
    if df is None:
        return None
    df = df[df["group"] == group]
    return df if len(df) else None


def _mib_round(comm: pd.DataFrame, method: str) -> float | None:
    rows = comm[comm["method"] == method]
    return float(rows["mib_up_round_all_clients"].mean()) if len(rows) else None


# ---------------------------------------------------------------- rules, one per claim


def rule_comm_reduction(c, m):
    """Reduction = 1 - uplink(medhe) / uplink(fedavg), bytes per round summed over clients, measured at the
    paper's model size (distilbert-arch, 66,955,010 parameters). Reproduced if the measured reduction is at
    least the claimed one minus 1 percentage point."""
    comm = _comm(m)
    if comm is None or _mib_round(comm, "medhe") is None or _mib_round(comm, "fedavg") is None:
        return _missing("paper-size bytes for medhe and fedavg", "papersize + comm")
    red = 100 * (1 - _mib_round(comm, "medhe") / _mib_round(comm, "fedavg"))
    ok = red >= c["reduction_pct"] - 1
    return f"{red:.1f} %", REPRODUCED if ok else NOT_REPRODUCED, ""


def _mib_rule(c, m, method: str, key: str = "mib_per_round"):
    comm = _comm(m)
    val = None if comm is None else _mib_round(comm, method)
    if val is None:
        return _missing(f"paper-size bytes for {method}", "papersize + comm")
    return f"{val:,.1f} MiB", REPRODUCED if _within(val, c[key]) else NOT_REPRODUCED, ""


def rule_comm_fedavg_mb(c, m):
    """Uplink MiB per round, 5 clients, dense float32 FedAvg at the paper's model size, measured by serialising.
    Reproduced if within 10 % of the claim."""
    return _mib_rule(c, m, "fedavg")


def rule_comm_medhe_mb(c, m):
    """Uplink MiB per round, 5 clients, MedHE (index sets + packed ciphertexts) at the paper's model size.
    Reproduced if within 10 % of the claim."""
    return _mib_rule(c, m, "medhe")


def rule_ciphertexts(c, m):
    """Ciphertexts per client per round at the paper's model size, with packing (medhe) and without
    (medhe_no_packing). Reproduced if both counts are within 10 % of the claims."""
    comm = _comm(m)
    if comm is None:
        return _missing("paper-size ciphertext counts", "papersize + comm")
    got = {}
    for key, method in (("packed", "medhe"), ("unpacked", "medhe_no_packing")):
        rows = comm[comm["method"] == method]
        got[key] = float(rows["ciphertexts_per_client"].mean()) if len(rows) else None
    if any(v is None for v in got.values()):
        have = ", ".join(f"{k}: {_fmt(v)}" for k, v in got.items())
        return have, NOT_TESTABLE, "medhe and medhe_no_packing must both run at paper size (pipeline.paper_size_methods)"
    ok = all(_within(got[k], c[k]) for k in got)
    return f"packed {got['packed']:,.0f}, unpacked {got['unpacked']:,.0f}", REPRODUCED if ok else NOT_REPRODUCED, ""


def _default_set(m: Measured) -> pd.Series | None:
    sec = m.csv("security/params.csv")
    if sec is None:
        return None
    rows = sec[sec["label"].str.startswith("pipeline default")]
    return rows.iloc[0] if len(rows) else None


def rule_slot_packing(c, m):
    """Largest number of 8-bit values per CKKS slot whose 5-client encrypted sum decrypts exactly, measured on
    the pipeline's parameter set. Reproduced if it is at least the claimed number."""
    row = _default_set(m)
    if row is None:
        return _missing("exact packing", "security")
    b = int(row["max_exact_batch_8bit"])
    return f"{b} values per slot (8-bit, 5 clients)", REPRODUCED if b >= c["values_per_slot"] else NOT_REPRODUCED, ""


def rule_ct_size(c, m):
    """Serialised size of one ciphertext (pipeline parameter set) and MedHE uplink per client per round at the
    paper's size. Reproduced if both are within 10 % of the claims; if the per-round figure is missing, judged
    on the ciphertext size alone."""
    row = _default_set(m)
    if row is None:
        return _missing("ciphertext size", "security")
    ct = float(row["ciphertext_bytes"]) / MIB
    comm = _comm(m)
    per_client = None
    if comm is not None and len(comm[comm["method"] == "medhe"]):
        per_client = float(comm[comm["method"] == "medhe"]["mib_up_per_client_round"].mean())
    ok = _within(ct, c["mib_per_ciphertext"]) and (per_client is None or _within(per_client, c["mib_per_client_round"]))
    return (f"{ct:.3f} MiB per ciphertext; {_fmt(per_client)} MiB per client per round",
            REPRODUCED if ok else NOT_REPRODUCED, "" if per_client is not None else "per-round figure not measured")


def rule_he_params(c, m):
    """Security level of (N, total modulus bits) in the HomomorphicEncryption.org standard (classical table, as
    SEAL enforces it). Reproduced if it is at least the claimed level."""
    sec = m.csv("security/params.csv")
    if sec is None:
        return _missing("security table", "security")
    rows = sec[(sec["poly_modulus_degree"] == c["poly_modulus_degree"]) & (sec["total_bits"] == c["total_bits"])]
    if not len(rows):
        return _missing(f"N={c['poly_modulus_degree']}, {c['total_bits']} bits", "security")
    lvl = rows.iloc[0]["security_classical"]
    lvl = None if pd.isna(lvl) else int(lvl)
    measured = f"{lvl}-bit" if lvl else f"below 128-bit (refused: {c['total_bits']} bits > standard's limit)"
    return measured, REPRODUCED if lvl and lvl >= c["security_bits"] else NOT_REPRODUCED, ""


def _summary(m: Measured, method: str, metric: str) -> pd.Series | None:
    s = m.csv("stats/summary.csv")
    if s is None:
        return None
    rows = s[(s["method"] == method) & (s["metric"] == metric)]
    return rows.iloc[0] if len(rows) else None


def untrained(m: Measured, methods: Sequence[str] | None = None) -> str:
    """A warning naming every method whose trials never moved the model (final weights = initial,
    ``model_change_l2`` = 0: its metrics are round 0's and say nothing about the method); "" if none."""
    t = m.csv("stats/trials.csv")
    if t is None or "model_change_l2" not in t.columns:
        return ""
    if methods is not None:
        t = t[t["method"].isin(methods)]
    dead = t[t["model_change_l2"] == 0].groupby("method")["seed"].count()
    total = t.groupby("method")["seed"].count()
    return "; ".join(f"WARNING: {k} never moved from its initial weights in {n} of {total[k]} trials"
                     for k, n in dead.items())


def _majority(m: Measured, metric: str) -> float | None:
    """The score of always predicting the majority class (``majority_<metric>`` in ``stats/summary.csv``,
    mean over its rows), or None."""
    s = m.csv("stats/summary.csv")
    base = None if s is None else s[s["metric"] == f"majority_{metric}"]["mean"]
    return float(base.mean()) if base is not None and len(base) else None


def little_learned(m: Measured, method: str, *, ref: str = "fedavg", metric: str = "f1_macro") -> str:
    """A note when ``method`` gained less than half of ``ref``'s gain over the majority class in ``metric``
    (means over trials, ``stats/summary.csv``): low membership leakage of a model that learned little is no
    evidence of privacy at useful accuracy. "" when it gained more, or when the summary lacks a value."""
    a, r, b = _summary(m, method, metric), _summary(m, ref, metric), _majority(m, metric)
    if a is None or r is None or b is None:
        return ""
    gain, ref_gain = float(a["mean"]) - b, float(r["mean"]) - b
    if gain >= ref_gain / 2:
        return ""
    return (f"NOTE: {method}'s {metric} {float(a['mean']):.3f} is {gain:+.3f} over the majority class ({b:.3f}), "
            f"{ref}'s {ref_gain:+.3f}: its low leakage comes with little learning")


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _acc_rule(c, m, method: str, metric: str, claimed_mean: float, claimed_std: float):
    row = _summary(m, method, metric)
    if row is None:
        return _missing(f"{method} {metric}", "train + stats")
    measured = f"{row['mean']:.3f} +- {row['std']:.3f} (n={int(row['n'])}, ddof=1)"
    warn = untrained(m, [method])
    if m.profile != "paper":
        return measured, NOT_TESTABLE, _join("the claim is about DistilBERT on Druglib.com; this profile measures a "
                                             "substitute (see configuration); run profile `paper` with a network", warn)
    ok = abs(row["mean"] - claimed_mean) <= 2 * claimed_std + 0.01 and not warn
    return measured, REPRODUCED if ok else NOT_REPRODUCED, warn


def rule_acc_medhe(c, m):
    """Mean test accuracy over the trials. Testable only in profile `paper` (the paper's data and model):
    reproduced if |mean - claimed| <= 2 x claimed std + 1 point."""
    return _acc_rule(c, m, "medhe", "accuracy", c["accuracy"], c["std"])


def rule_acc_fedavg(c, m):
    """Mean test accuracy of FedAvg over the trials (binary F1 shown). Testable only in profile `paper`:
    reproduced if |mean - claimed| <= 2 x claimed std + 1 point."""
    out = _acc_rule(c, m, "fedavg", "accuracy", c["accuracy"], c["std"])
    f1 = _summary(m, "fedavg", "f1_binary")
    if f1 is not None:
        out = (out[0] + f"; binary F1 {f1['mean']:.3f} +- {f1['std']:.3f}", *out[1:])
    return out


def rule_f1_medhe(c, m):
    """Mean macro-F1 of MedHE over the trials. Testable only in profile `paper`: reproduced if
    |mean - claimed| <= 2 x claimed std + 0.01."""
    return _acc_rule(c, m, "medhe", "f1_macro", c["f1_macro"], c["std"])


def rule_p_value(c, m):
    """Paired t-test of test accuracy, medhe vs fedavg, over the seeds both ran (Wilcoxon shown too).
    Not reproduced if p < alpha (the claimed level). Reproduced if p >= alpha over at least as many pairs
    as the paper's trials; with fewer pairs p >= alpha says little (the test has almost no power), so not
    testable here. The exact p is not compared."""
    t = m.csv("stats/tests.csv")
    if t is None:
        return _missing("paired tests", "stats")
    rows = t[(t["a"] == "medhe") & (t["b"] == "fedavg") & (t["metric"] == "accuracy")]
    if not len(rows) or rows.iloc[0]["n_pairs"] < 2:
        return "n/a", NOT_TESTABLE, "needs >= 2 paired trials of medhe and fedavg"
    r = rows.iloc[0]
    used = f" over {int(r['n_wilcoxon'])} nonzero pairs" if "n_wilcoxon" in r and pd.notna(r["n_wilcoxon"]) else ""
    if pd.isna(r["p_ttest"]):  # stats.paired_tests notes why (all differences zero, or zero variance)
        wil = "" if pd.isna(r["p_wilcoxon"]) else f"; Wilcoxon p = {r['p_wilcoxon']:.3g}{used}"
        return f"t-test undefined ({int(r['n_pairs'])} pairs){wil}; mean diff {r['mean_diff']:+.3f}", NOT_TESTABLE, r["note"]
    measured = (f"p = {r['p_ttest']:.3g} (t-test, {int(r['n_pairs'])} pairs), Wilcoxon p = {r['p_wilcoxon']:.3g}{used}; "
                f"mean diff {r['mean_diff']:+.3f}")
    if r["p_ttest"] < c["alpha"]:
        return measured, NOT_REPRODUCED, ""
    if r["n_pairs"] < c["pairs"]:
        return measured, NOT_TESTABLE, (f"p >= {c['alpha']:g} over {int(r['n_pairs'])} pairs says little; the paper's "
                                        f"test had {c['pairs']} (run a profile with {c['pairs']} seeds)")
    return measured, REPRODUCED, ""


def rule_he_only(c, m):
    """Bytes: HE-only uplink MiB per round (5 clients) at the paper's size, reproduced if within 10 %.
    Accuracy and F1 are about the paper's data (shown, not judged outside profile `paper`)."""
    comm = _comm(m)
    val = None if comm is None else _mib_round(comm, "he_only")
    acc = _summary(m, "he_only", "accuracy")
    acc_txt = f"; accuracy {acc['mean']:.3f} +- {acc['std']:.3f}" if acc is not None else ""
    if val is None:
        return ("n/a" + acc_txt, NOT_TESTABLE, "he_only did not run at paper size in this profile "
                "(pipeline.paper_size_methods)")
    return f"{val:,.0f} MiB per round{acc_txt}", REPRODUCED if _within(val, c["mib_per_round"]) else NOT_REPRODUCED, ""


def rule_dp_epsilon(c, m):
    """Epsilon of the client-level Gaussian mechanism for the stated (z, T, delta), all clients every round,
    from dp-accounting (RDP and PLD). Reproduced if both are <= the claimed bound."""
    eps = m.csv("privacy/epsilon.csv")
    if eps is None:
        return _missing("epsilon", "privacy")
    rows = eps[(eps["noise_multiplier"] == c["noise_multiplier"]) & (eps["round"] == c["rounds"])]
    if not len(rows):
        return _missing(f"epsilon for z={c['noise_multiplier']}, T={c['rounds']}", "privacy")
    r = rows.iloc[0]
    ok = r["epsilon_rdp"] <= c["epsilon_max"] and r["epsilon_pld"] <= c["epsilon_max"]
    return (f"epsilon = {r['epsilon_rdp']:.1f} (RDP), {r['epsilon_pld']:.1f} (PLD) at delta {c['delta']}",
            REPRODUCED if ok else NOT_REPRODUCED,
            "epsilon of the unquantised Gaussian mechanism; no amplification by (1 - s) is applied: top-k "
            "selection is not covered; MedHE's packed-CKKS and BFV paths round each client's noisy share, which "
            "this accountant does not cover (their runs report epsilon 'not covered')")


def rule_mia(c, m):
    """Worst-case success rate (balanced accuracy at a calibration-fitted threshold, best of the paper's four
    attacks), mean over trials. Reproduced if MedHE's is lower than FedAvg's by at least half the claimed gap.
    medhe_no_he and medhe_no_dp are shown: encryption should not change leakage of the final model, DP should.
    Each method's mean macro-F1 is shown beside it, and a note says when MedHE gained less than half of
    FedAvg's macro-F1 over the majority class: lower leakage at near-chance utility is no privacy gain."""
    mia = m.csv("mia/summary.csv")
    if mia is None:
        return _missing("membership inference", "train + mia")
    means = mia.groupby("method")["worst_success_rate"].mean()
    if not {"medhe", "fedavg"} <= set(means.index):
        return _missing("membership inference for medhe and fedavg", "train + mia")
    f1 = {k: _summary(m, k, "f1_macro") for k in means.index}
    shown = "; ".join(f"{k} {v:.3f}" + ("" if f1[k] is None else f" (macro-F1 {f1[k]['mean']:.3f})")
                      for k, v in means.items())
    ok = means["fedavg"] - means["medhe"] >= (c["fedavg"] - c["medhe"]) / 2
    warn = untrained(m, list(means.index))
    ok = ok and not untrained(m, ["medhe", "fedavg"])
    lira = m.csv("mia/lira_attacks.csv")
    lira_txt = ""
    if lira is not None and len(lira[lira["attack"] == "lira_offline"]):
        rows = lira[lira["attack"] == "lira_offline"].groupby("method")[["auc", "tpr_at_1pct_fpr"]].mean()
        lira_txt = "offline LiRA (one target each; not judged): " + ", ".join(
            f"{k} AUC {r.auc:.3f} TPR@1%FPR {r.tpr_at_1pct_fpr:.3f}" for k, r in rows.iterrows())
    return shown, REPRODUCED if ok else NOT_REPRODUCED, _join(f"{int(mia['seed'].nunique())} trials", lira_txt, warn,
                                                              little_learned(m, "medhe"))


def rule_ablation(c, m):
    """Sub-claims judged where measurable: bytes of medhe_no_packing and medhe_no_he at paper size within 10 %;
    macro-F1 values are about the paper's data (shown). Reproduced only if every measurable sub-claim holds."""
    parts, verdicts = [], []
    comm = _comm(m)
    for method, key in (("medhe_no_packing", "no_packing_mib"), ("medhe_no_he", "no_he_mib")):
        val = None if comm is None else _mib_round(comm, method)
        if val is not None:
            parts.append(f"{method} {val:,.1f} MiB/round")
            verdicts.append(_within(val, c[key]))
    for method in ("medhe_no_ef", "medhe_no_adaptive", "medhe"):
        row = _summary(m, method, "f1_macro")
        if row is not None:
            parts.append(f"{method} macro-F1 {row['mean']:.3f}")
    warn = untrained(m, ["medhe_no_ef", "medhe_no_adaptive", "medhe", "medhe_no_packing", "medhe_no_he"])
    if not verdicts:
        return "; ".join(parts) or "n/a", NOT_TESTABLE, _join("no ablation ran at paper size in this profile", warn)
    return "; ".join(parts), REPRODUCED if all(verdicts) else NOT_REPRODUCED, warn


def rule_sparsity_sweep(c, m):
    """From the sparsity sweep (embedded model, bytes measured): (1) the uplink saving vs fedavg is below 80 %
    at every s < 0.8, and (2) at s = 0.9 accuracy stays within 2 points of fedavg's (same profile, mean over
    trials; MedHE's sweep points when the sweep ran MedHE, else every swept method's). Reproduced only if
    both hold. The absolute 85 % accuracy threshold at s > 0.95 is about the paper's data (shown, not judged)."""
    sw = m.csv("comm/sweep.csv")
    trials = m.csv("stats/trials.csv")
    if sw is None or not len(sw) or trials is None:
        return _missing("sparsity sweep", "sweep + comm + stats")
    parts = [f"{r.method} s={r.sparsity}: saving {r.saving_pct:.1f} %, acc {r.accuracy:.3f}" for r in sw.itertuples()]
    low, keep = sw[sw["sparsity"] < c["low_s"]], sw[sw["sparsity"] == c["keep_s"]]
    fed = trials[trials["method"] == "fedavg"]["accuracy"]
    if not len(low) or not len(keep) or not len(fed):
        return "; ".join(parts), NOT_TESTABLE, f"the sweep needs s < {c['low_s']}, s = {c['keep_s']} and a fedavg run"
    ok_low = bool((low["saving_pct"] < c["low_saving_pct"]).all())
    if (keep["method"] == "medhe").any():
        keep = keep[keep["method"] == "medhe"]
    ok_keep = bool(keep["accuracy"].mean() >= fed.mean() - 0.02)
    note = f"saving below {c['low_saving_pct']} % at s < {c['low_s']}: {ok_low}; accuracy kept at s = {c['keep_s']}: {ok_keep}"
    return "; ".join(parts), REPRODUCED if ok_low and ok_keep else NOT_REPRODUCED, note


def rule_convergence(c, m):
    """First round at which test accuracy comes within 1 point of its final value (10-round runs, or the
    profile's convergence_rounds). Reproduced if both fedavg and medhe reach it by the claimed round and
    neither ends at the majority class (final macro-F1, mean over seeds, within 0.01 of the majority
    class's): a model that predicts one label has stopped moving, not learned."""
    conv = m.csv("stats/convergence.csv")
    if conv is None or not len(conv):
        return _missing("convergence runs", "convergence + stats")
    got = conv.groupby("method")["converged_round"].max().astype(int).to_dict()
    if not {"fedavg", "medhe"} <= set(got):
        return _missing("convergence of fedavg and medhe", "convergence")
    rounds = int(conv["rounds"].max())
    ok = got["fedavg"] <= c["round"] and got["medhe"] <= c["round"]
    notes = []
    hist, base = m.csv("stats/convergence_history.csv"), _majority(m, "f1_macro")
    if hist is not None and base is not None and "f1_macro" in hist.columns:
        last = hist[hist["round"] == hist.groupby("method")["round"].transform("max")]
        final = last.groupby("method")["f1_macro"].mean()
        for method in ("fedavg", "medhe"):
            if method in final.index and final[method] <= base + 0.01:
                ok = False
                notes.append(f"{method} ends at the majority class (final macro-F1 {final[method]:.3f}, "
                             f"majority class {base:.3f}): it stopped, it did not learn")
    return (f"fedavg round {got['fedavg']}, medhe round {got['medhe']} (of {rounds})",
            REPRODUCED if ok else NOT_REPRODUCED, _join(*notes))


def rule_scale(c, m):
    """'Practical' is not defined by the paper, so no verdict: shown are the measured bytes per client and
    server aggregation time per round as the client count grows (tabular task)."""
    sc = m.csv("comm/scale.csv")
    if sc is None or not len(sc):
        return _missing("client-count sweep", "scale + comm")
    parts = [f"{r.method} n={r.num_clients}: {r.mib_up_per_client_round:.3f} MiB/client, aggregate {r.time_aggregate:.2f} s"
             for r in sc.itertuples()]
    return "; ".join(parts), NOT_TESTABLE, "the paper gives no criterion for 'practical'"


def overhead_by_phase(phases: pd.DataFrame, *, a: str = "medhe", b: str = "fedavg", top: int = 3) -> str:
    """The phases that make ``a`` slower than ``b``: mean seconds per run, largest differences first.

    >>> ph = pd.DataFrame({"method": ["medhe", "medhe", "fedavg"], "phase": ["encrypt", "evaluate", "evaluate"],
    ...                    "mean_s": [50.0, 40.0, 38.0]})
    >>> overhead_by_phase(ph)
    'extra seconds per run by phase: encrypt +50, evaluate +2'
    """
    wide = phases.pivot_table(index="phase", columns="method", values="mean_s").fillna(0.0)
    if a not in wide.columns or b not in wide.columns:
        return ""
    diff = (wide[a] - wide[b]).sort_values(ascending=False)
    parts = [f"{phase} {sec:+.0f}" for phase, sec in diff.head(top).items() if round(sec) > 0]
    return "extra seconds per run by phase: " + ", ".join(parts) if parts else ""


def rule_overhead(c, m):
    """Extra wall time of medhe over fedavg, mean over paired trials (whole run, same hardware). Reproduced if
    within 20 percentage points of the claim. The note names the phases that take the extra time."""
    trials = m.csv("stats/trials.csv")
    if trials is None:
        return _missing("trials", "stats")
    w = trials.pivot_table(index="seed", columns="method", values="wall_time_s")
    if not {"medhe", "fedavg"} <= set(w.columns):
        return _missing("wall times of medhe and fedavg", "train")
    extra = 100 * float((w["medhe"] / w["fedavg"] - 1).mean())
    phases = m.csv("stats/phases.csv")
    note = "" if phases is None else overhead_by_phase(phases)
    return f"{extra:+.0f} % wall time", REPRODUCED if abs(extra - c["extra_time_pct"]) <= 20 else NOT_REPRODUCED, note


def rule_comm_honest_reachable(c, m):
    """Exact BFV aggregation (coefficient-packed 8-bit fields, seeded ciphertexts), measured bytes per
    ciphertext and index sets (benchmark): reproduced if at the claimed s its uplink per round (5 clients,
    best case: all clients share one index set) is at most the claimed bytes. The note gives the smallest s
    that reaches the claimed bytes (uplink, and uplink + downlink; best case and random index sets)."""
    target = m.csv("bench/bfv_target.csv")
    rounds = m.csv("bench/bfv.csv")
    if target is None or rounds is None:
        return _missing("BFV benchmark", "bench")
    best = rounds[rounds["row"].str.contains("union = k", regex=False)]
    if not len(best):
        return _missing("BFV best-case round", "bench")
    up = float(best.iloc[0]["up_round_MB"]) * 1e6 / MIB
    d = target[target["params"].str.startswith("default")].set_index("union")
    note = ("smallest s reaching the claimed bytes: uplink only {:.4f} (shared index set) / {:.4f} (random index "
            "sets); uplink + downlink {:.4f} / {:.4f}").format(d.loc["k", "s_uplink_target"], d.loc["random", "s_uplink_target"],
                                                            d.loc["k", "s_total_target"], d.loc["random", "s_total_target"])
    front = m.csv("comm/frontier.csv")
    if front is not None and len(front[front["kind"] == "frontier"]):
        fr = front[front["kind"] == "frontier"]
        top = fr.loc[fr["sparsity"].idxmax()]
        note += f"; on the embedded model at s={top['sparsity']:g} ({top['method']}, {int(top['bits'])}-bit) macro-F1 {top['f1_macro']:.3f}"
        if "model_change_l2" in fr.columns and not top["model_change_l2"] > 0:
            note += " (WARNING: that run never moved from its initial weights)"
    ok = up <= c["mib_per_round"]
    return f"{up:,.1f} MiB uplink per round at s = {c['sparsity']} (BFV, best case)", REPRODUCED if ok else NOT_REPRODUCED, note


PAPER_MODEL_PARAMS = 66_955_010  # distilbert-base-uncased + 2-class head (tests/test_model.py measures it)


def claimed_frontier_point(claims_file: str | Path) -> tuple[float, float]:
    """The paper's claimed (uplink bytes per round per parameter, macro-F1) for the frontier figure."""
    by_id = {c["id"]: c["claimed"] for c in load_claims(claims_file)}
    return by_id["comm-medhe-mb"]["mib_per_round"] * MIB / PAPER_MODEL_PARAMS, by_id["f1-medhe"]["f1_macro"]


RULES: dict[str, Callable[[dict, Measured], tuple[str, str, str]]] = {
    "comm-reduction": rule_comm_reduction, "comm-fedavg-mb": rule_comm_fedavg_mb,
    "comm-medhe-mb": rule_comm_medhe_mb, "ciphertexts": rule_ciphertexts, "slot-packing": rule_slot_packing,
    "ct-size": rule_ct_size, "he-params": rule_he_params, "acc-medhe": rule_acc_medhe,
    "acc-fedavg": rule_acc_fedavg, "f1-medhe": rule_f1_medhe, "p-value": rule_p_value, "he-only": rule_he_only,
    "dp-epsilon": rule_dp_epsilon, "mia": rule_mia, "ablation": rule_ablation,
    "sparsity-sweep": rule_sparsity_sweep, "convergence": rule_convergence, "scale": rule_scale,
    "overhead": rule_overhead, "comm-honest-reachable": rule_comm_honest_reachable,
}

SOURCES = {
    "comm-reduction": "comm/bytes.csv", "comm-fedavg-mb": "comm/bytes.csv", "comm-medhe-mb": "comm/bytes.csv",
    "ciphertexts": "comm/bytes.csv", "slot-packing": "security/params.csv", "ct-size": "security/params.csv",
    "he-params": "security/params.csv", "acc-medhe": "stats/summary.csv", "acc-fedavg": "stats/summary.csv",
    "f1-medhe": "stats/summary.csv", "p-value": "stats/tests.csv", "he-only": "comm/bytes.csv",
    "dp-epsilon": "privacy/epsilon.csv", "mia": "mia/summary.csv", "ablation": "comm/bytes.csv",
    "sparsity-sweep": "comm/sweep.csv", "convergence": "stats/convergence.csv", "scale": "comm/scale.csv",
    "overhead": "stats/trials.csv", "comm-honest-reachable": "bench/bfv.csv",
}


def _configuration(m: Measured) -> str:
    cfg = m.json("data/summary.json") or {}
    run = m.json("config.json") or {}
    return (f"profile {m.profile}: data {cfg.get('name', '?')} ({cfg.get('n_train', '?')} train / "
            f"{cfg.get('n_test', '?')} test), model {run.get('model', '?')}, {run.get('num_clients', '?')} clients, "
            f"{run.get('rounds', '?')} rounds, seeds {run.get('seeds', '?')}; CKKS {run.get('ckks', '?')}")


def build_ledger(claims_file: str | Path, *, root: str | Path, profile: str) -> list[LedgerRow]:
    """Evaluate every claim; a claim without a rule is an error (every claim gets a row)."""
    claims = load_claims(claims_file)
    missing = [c["id"] for c in claims if c["id"] not in RULES]
    if missing:
        raise ValueError(f"claims without a rule: {missing}")
    m = Measured(root, profile)
    config = _configuration(m)
    rows = []
    for c in claims:
        rule = RULES[c["id"]]
        measured, verdict, note = rule(c["claimed"], m)
        rows.append(LedgerRow(
            id=c["id"], claim=c["claim"], claimed=", ".join(f"{k}={v}" for k, v in c["claimed"].items()),
            measured=measured, verdict=verdict, rule=" ".join((rule.__doc__ or "").split()), profile=profile,
            configuration=config, source=str(Path("results") / profile / SOURCES[c["id"]]), note=note))
    return rows


def to_frame(rows: list[LedgerRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows])


def from_csv(path: str | Path) -> list[LedgerRow]:
    """The rows of a ledger written by ``to_frame(...).to_csv``."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [LedgerRow(**r) for r in df.to_dict("records")]


def table_markdown(rows: list[LedgerRow]) -> str:
    """The verdict counts and the table (id, claim, measured, verdict, note), without the rules."""
    counts = pd.Series([r.verdict for r in rows]).value_counts().to_dict()
    lines = ["Verdicts: " + ", ".join(f"{k}: {v}" for k, v in counts.items()), "",
             "| id | claim | measured | verdict | note |", "|---|---|---|---|---|"]
    lines += [f"| {r.id} | {r.claim} | {r.measured} | **{r.verdict}** | {r.note} |" for r in rows]
    return "\n".join(lines)


def to_markdown(rows: list[LedgerRow]) -> str:
    """The ledger as a Markdown table (id, claim, measured, verdict, note) plus the rules."""
    lines = [f"# Claims ledger (profile `{rows[0].profile}`)" if rows else "# Claims ledger", "",
             rows[0].configuration if rows else "", "", table_markdown(rows), "", "## Rules", ""]
    lines += [f"- **{r.id}** ({r.source}): {r.rule}" for r in rows]
    return "\n".join(lines) + "\n"
