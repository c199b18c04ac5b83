"""``results/<profile>/REPORT.md``: everything a profile measured, as one Markdown page.

The pipeline's ``report`` stage writes it after the claims ledger, from results files only
(``config.json``, ``claims.md``, ``stats/``, ``mia/``, ``comm/``, ``bench/``, ``privacy/`` and each
run's ``run.json``); nothing in it is typed by hand. Every section says which file it reads, and a
section whose files a profile did not produce says so instead of inventing a row.

    python -m medhe.profile_report quick        # writes results/quick/REPORT.md and plots/rounds.csv

The ``*_table`` functions are pure (frames in, Markdown out); :func:`render` reads the files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from medhe import results

PHASE_ORDER = ("local_training", "sparsify_clip", "align", "noise", "quantise", "encrypt", "aggregate",
               "decrypt", "evaluate", "setup")
MIB = 2 ** 20


# ---------------------------------------------------------------- formatting

def md_table(cols: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table of already formatted cells.

    >>> print(md_table(["a", "b"], [["1", "x"]]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] +
                     ["| " + " | ".join(r) + " |" for r in rows])


def num(x, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals and thousands separators; empty for a missing value.

    >>> num(1234.5678, 1), num(float("nan")), num(None)
    ('1,234.6', '', '')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:,.{digits}f}"


def pm(mean: float, std: float, digits: int = 3) -> str:
    """``mean ± std``; the std of a single value (NaN) is left out.

    >>> pm(0.5, 0.01), pm(0.5, float("nan"))
    ('0.500 ± 0.010', '0.500')
    """
    return num(mean, digits) if pd.isna(std) else f"{num(mean, digits)} ± {num(std, digits)}"


def _p(p: float, fmt: str) -> str:
    return "undefined" if pd.isna(p) else format(p, fmt)


# ---------------------------------------------------------------- tables (pure)

def config_table(config: dict) -> str:
    """The configuration the profile ran (``config.json``), one row per key; sections flattened."""
    rows = []
    for key, value in config.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        rows.append([key, f"`{value}`"])
    return md_table(["parameter", "value"], rows)


def wall_time_table(records: pd.DataFrame) -> str:
    """Training wall time per pipeline group, summed from the run records.

    ``records``: one row per run with ``group`` and ``wall_time_s`` (``run.json``). A group's time is
    the sum of its runs' wall times; the total is the sum over groups.
    """
    g = records.groupby("group", sort=False)["wall_time_s"].agg(["count", "sum"])
    rows = [[group, str(int(r["count"])), num(r["sum"] / 60, 1)] for group, r in g.iterrows()]
    rows.append(["**all training runs**", str(int(g["count"].sum())), f"**{num(g['sum'].sum() / 60, 1)}**"])
    return md_table(["group", "runs", "minutes"], rows)


def trial_table(summary: pd.DataFrame, trials: pd.DataFrame) -> str:
    """Per method: n, accuracy, macro-F1 with 95 % CI, binary F1, how many models moved, mean wall time."""
    rows = []
    for method, g in summary.groupby("method", sort=False):
        by = {r["metric"]: r for _, r in g.iterrows()}
        f1, acc = by["f1_macro"], by["accuracy"]
        t = trials[trials["method"] == method]
        moved = "" if "model_change_l2" not in t else f"{int((t['model_change_l2'] > 0).sum())} of {len(t)}"
        lift = f1["mean"] - t["majority_f1_macro"].mean() if "majority_f1_macro" in t else float("nan")
        wall = by.get("wall_time_s")
        rows.append([method, str(int(f1["n"])), pm(acc["mean"], acc["std"]),
                     f"{pm(f1['mean'], f1['std'])} [{num(f1['ci_low'])}, {num(f1['ci_high'])}]",
                     "" if pd.isna(lift) else f"{lift:+.3f}",
                     pm(by["f1_binary"]["mean"], by["f1_binary"]["std"]) if "f1_binary" in by else "",
                     moved, "" if wall is None else num(wall["mean"], 0)])
    return md_table(["method", "n", "accuracy", "macro-F1 [95 % CI]", "macro-F1 − majority class", "binary F1",
                     "model moved", "run wall time (s)"], rows)


def paired_tests_table(tests: pd.DataFrame) -> str:
    """Paired tests (t-test and Wilcoxon) between methods, seed by seed."""
    rows = [[f"{r.a} vs {r.b}", r.metric, str(r.n_pairs), f"{r.mean_diff:+.3f}", _p(r.p_ttest, ".2g"),
             _p(r.p_wilcoxon, ".3g")] for r in tests.itertuples()]
    return md_table(["a vs b", "metric", "pairs", "mean diff", "paired t p", "Wilcoxon p"], rows)


def mia_table(summary: pd.DataFrame) -> str:
    """Membership inference per method, over trials: worst case of the paper's four attacks, best AUC, and
    (where the mia stage wrote them) the class-prior model's success and AUC on the same splits."""
    prior = "prior_success_rate" in summary
    rows = [[method, str(len(g)), pm(g["worst_success_rate"].mean(), g["worst_success_rate"].std()),
             pm(g["max_auc"].mean(), g["max_auc"].std()), num(g["max_tpr_at_1pct_fpr"].mean()),
             *([pm(g["prior_success_rate"].mean(), g["prior_success_rate"].std()),
                pm(g["prior_auc"].mean(), g["prior_auc"].std())] if prior else [])]
            for method, g in summary.groupby("method", sort=False)]
    return md_table(["method", "trials", "worst-case success (paper's 4 attacks)", "max AUC",
                     "max TPR at 1 % FPR", *(["class-prior model: success", "class-prior model: AUC"] if prior else [])],
                    rows)


def lira_table(attacks: pd.DataFrame, prior: pd.DataFrame | None = None) -> str:
    """Offline LiRA against the other attacks on each target: AUC with its 95 % CI, TPR at 1 % FPR; each
    target's rows end with the class-prior model on the same split (``prior``, if given)."""
    frames = [attacks] if prior is None else [attacks, prior]
    both = pd.concat(frames, ignore_index=True)
    both["_order"] = both["method"].map({m: i for i, m in enumerate(attacks["method"].unique())})
    both = both.sort_values(["_order", "seed"], kind="stable")
    rows = [[r.method, str(r.seed), r.attack, num(r.success_rate), f"{num(r.auc)} [{num(r.auc_ci_low)}, {num(r.auc_ci_high)}]",
             num(r.tpr_at_1pct_fpr)] for r in both.itertuples()]
    return md_table(["target", "seed", "attack", "success", "AUC [95 % CI]", "TPR at 1 % FPR"], rows)


def bytes_table(comm: pd.DataFrame) -> str:
    """Measured bytes per method: MiB per client per round, up and down; ciphertexts per client."""
    rows = []
    for method, g in comm.groupby("method", sort=False):
        ct = g["ciphertexts_per_client"].mean() if "ciphertexts_per_client" in g else float("nan")
        rows.append([method, num(g["mib_up_per_client_round"].mean(), 1), num(g["mib_down_per_client_round"].mean(), 1),
                     num(g["mib_up_round_all_clients"].mean(), 1), num(ct, 0)])
    return md_table(["method", "MiB up / client / round", "MiB down / client / round", "MiB up / round, all clients",
                     "ciphertexts / client"], rows)


def phase_table(phases: pd.DataFrame) -> str:
    """Mean seconds per run by phase; ``untimed`` is the wall time outside every timed phase."""
    wide = phases.pivot(index="method", columns="phase", values="mean_s")
    order = [c for c in PHASE_ORDER if c in wide.columns]
    order += sorted(c for c in wide.columns if c not in order and c != "untimed")
    order += ["untimed"] if "untimed" in wide.columns else []
    rows = [[method, *("" if pd.isna(r[c]) else f"{r[c]:.0f}" for c in order), f"{r[order].sum():.0f}"]
            for method, r in wide.iterrows()]
    return md_table(["method", *order, "wall"], rows)


def density_table(hist: pd.DataFrame) -> str:
    """Fraction of the model each client sends, per round (mean over seeds): the EMA threshold's drift."""
    h = hist[(hist["round"] >= 1) & hist["density"].notna()]
    wide = h.groupby(["method", "round"])["density"].mean().unstack("round")
    rows = [[method, *(num(v) for v in r)] for method, r in wide.iterrows()]
    return md_table(["method", *(f"round {int(c)}" for c in wide.columns)], rows)


def sweep_table(sweep: pd.DataFrame) -> str:
    """Sparsity sweep: bytes, saving against FedAvg, union density and the final metrics."""
    rows = [[r.method, f"{r.sparsity:g}", num(r.mib_up_per_client_round, 1), f"{r.saving_pct:+.1f} %",
             num(getattr(r, "union_density", float("nan"))), num(r.accuracy), num(r.f1_macro)]
            for r in sweep.sort_values(["method", "sparsity"]).itertuples()]
    return md_table(["method", "s", "MiB up / client / round", "saving vs FedAvg", "union density", "accuracy",
                     "macro-F1"], rows)


def convergence_table(conv: pd.DataFrame, history: pd.DataFrame) -> str:
    """Accuracy / macro-F1 per round of the long runs, and the round each converged (``stats/convergence.csv``)."""
    methods = list(dict.fromkeys(history["method"]))
    wide = history.pivot_table(index="round", columns="method", values=["accuracy", "f1_macro"])
    rows = [[str(int(rnd)), *(f"{num(wide.loc[rnd, ('accuracy', m)])} / {num(wide.loc[rnd, ('f1_macro', m)])}"
                              for m in methods)] for rnd in wide.index]
    done = conv.set_index("method")
    rows.append(["converged at", *(f"round {int(done.loc[m, 'converged_round'])}" if m in done.index else ""
                                   for m in methods)])
    return md_table(["round", *(f"{m}: accuracy / macro-F1" for m in methods)], rows)


def noniid_table(noniid: pd.DataFrame, trials: pd.DataFrame, sizes: dict[str, list[int]]) -> str:
    """Non-IID (Dirichlet) against the IID trial of the same method and seed."""
    rows = []
    for r in noniid.itertuples():
        iid = trials[(trials["method"] == r.method) & (trials["seed"] == r.seed)]
        rows.append([r.method, str(r.seed), ", ".join(map(str, sizes.get(r.method, []))), num(r.accuracy),
                     num(r.f1_macro), num(iid["accuracy"].iloc[0]) if len(iid) else "",
                     num(iid["f1_macro"].iloc[0]) if len(iid) else ""])
    return md_table(["method", "seed", "client sizes", "non-IID accuracy", "non-IID macro-F1", "IID accuracy",
                     "IID macro-F1"], rows)


def scale_table(scale: pd.DataFrame, f1: dict[tuple[str, int], float]) -> str:
    """Client-count sweep: uplink per client, server aggregation time, final macro-F1."""
    rows = [[r.method, str(int(r.num_clients)), num(r.bytes_up_per_client, 0), num(r.time_aggregate * 1000, 1),
             num(f1.get((r.method, int(r.num_clients)), float("nan")))]
            for r in scale.sort_values(["method", "num_clients"]).itertuples()]
    return md_table(["method", "clients", "bytes up / client / round", "aggregation ms / round", "macro-F1"], rows)


def frontier_table(frontier: pd.DataFrame) -> str:
    """Accuracy against measured uplink bytes: the frontier's points and the trial methods beside them."""
    rows = [[r.method, str(r.kind), "" if pd.isna(r.sparsity) else f"{r.sparsity:g}",
             "" if pd.isna(r.bits) else f"{int(r.bits)}", num(r.mib_up_per_client_round, 1), num(r.accuracy),
             num(r.f1_macro), num(r.model_change_l2)]
            for r in frontier.itertuples()]
    return md_table(["method", "kind", "s", "bits", "MiB up / client / round", "accuracy", "macro-F1",
                     "model change (L2)"], rows)


def bfv_table(bfv: pd.DataFrame, target: pd.DataFrame) -> str:
    """Exact BFV aggregation at the paper's model size, and the sparsity it needs to meet the paper's bytes."""
    rows = [[r.row, num(r.values_per_client, 0), num(r.cts_per_client, 0), num(r.up_round_MB, 1),
             num(r.round_MB, 1)] for r in bfv.itertuples()]
    first = md_table(["layout", "values / client", "ciphertexts / client", "MB up / round", "MB up+down / round"], rows)
    rows = [[r.params, r.union, num(r.target_bytes / MIB, 0), num(r.s_uplink_target, 4), num(r.s_total_target, 4)]
            for r in target.itertuples()]
    second = md_table(["parameters", "index sets", "target MiB / round", "s for uplink", "s for uplink + downlink"], rows)
    return f"{first}\n\n{second}"


def security_table(security: pd.DataFrame, packing: pd.DataFrame | None) -> str:
    """CKKS parameter sets: the HE standard's verdict, bytes per ciphertext, measured error, and the largest
    number of quantised values per slot whose 5-client sum decrypts exactly (per bit width, measured)."""
    exact = {} if packing is None else {r.params.split(" 2^")[0]: r for r in packing.itertuples()}
    widths = [b for b in (4, 8, 12, 16) if packing is not None and f"exact_B_{b}" in packing.columns]
    rows = []
    for r in security.itertuples():
        key = f"N={r.poly_modulus_degree} {r.coeff_mod_bit_sizes}"
        e = exact.get(key)
        rows.append([r.label, key, str(r.total_bits), "yes" if r.accepted else "**refused**",
                     "" if pd.isna(r.security_classical) else f"{r.security_classical:.0f}",
                     num(r.ciphertext_bytes, 0), "" if pd.isna(r.max_abs_error_sum) else f"{r.max_abs_error_sum:.1e}",
                     *("" if e is None else str(int(getattr(e, f"exact_B_{b}"))) for b in widths)])
    return md_table(["set", "parameters", "modulus bits", "accepted", "security (bits)", "bytes / ciphertext",
                     "max error of a sum", *(f"values per slot, {b}-bit" for b in widths)], rows)


def privacy_table(statement: dict) -> str:
    """The DP statement: epsilon of the configured noise, and the noise needed for the target epsilon."""
    need = statement.get("noise_multiplier_for_target", {})
    rows = [["mechanism", statement.get("mechanism", "")],
            ["noise multiplier, clip norm, delta",
             f"{statement['noise_multiplier']}, {statement['clip_norm']}, {statement['delta']:g}"],
            ["epsilon (RDP / PLD)", f"{num(statement['epsilon_rdp'], 2)} / {num(statement['epsilon_pld'], 2)}"]]
    if need:
        rows.append([f"noise multiplier for epsilon = {need['target_epsilon']:g} (RDP / PLD)",
                     f"{num(need['rdp'], 2)} / {num(need['pld'], 2)}"])
    caveats = "".join(f"\n- {c}" for c in statement.get("caveats", []))
    return md_table(["", ""], rows) + (f"\n\nCaveats:\n{caveats}" if caveats else "")


def _epsilon_cell(g: pd.DataFrame) -> str:
    """The epsilon column of one variant, from what its runs recorded (``comm/to_target.csv``): the mean
    client-level epsilon where an accountant covers the release, else the mean record-level epsilon, else
    "not covered" (a DP mechanism no accountant covers; the run record says why) or "no DP"."""
    from medhe.privacy import NOT_COVERED
    from medhe.targets import NO_DP

    eps = g["epsilon"].dropna()
    if len(eps):
        return num(eps.mean(), 1)
    record = g["epsilon_record"].dropna() if "epsilon_record" in g else pd.Series(dtype=float)
    if len(record):
        return f"{num(record.mean(), 1)} per record"
    if "epsilon_status" not in g:
        return "not recorded"
    status = set(g["epsilon_status"].astype(str))
    if any(s.startswith(NOT_COVERED) for s in status):
        return NOT_COVERED
    return NO_DP if status == {NO_DP} else "; ".join(sorted(status - {NO_DP}))


def to_target_table(to_target: pd.DataFrame | None) -> str:
    """Per variant: macro-F1 after the paper's 3 rounds, how many seeds reached the target, and the mean
    rounds and MiB per client (uplink) to reach it over those seeds, and epsilon as the runs recorded it
    (``comm/to_target.csv``, :func:`medhe.targets.to_target_table`). A variant no seed brought to the
    target says so, with its budget; without the file, says so.
    """
    if to_target is None or not len(to_target):
        return "not yet measured (`comm/to_target.csv` absent or empty)"
    rows = []
    for variant, g in to_target.groupby("variant", sort=True):
        hit = g[g["reached"].astype(bool)]
        budget = int(g["rounds_run"].max())
        rounds = num(hit["rounds_to_target"].mean(), 1) if len(hit) else f"not reached in {budget}"
        if "reference_learned" in g and not g["reference_learned"].astype(bool).any():
            rounds = "no target: FedAvg's reference did not learn"
        mib = num(hit["mib_up_to_target"].mean(), 1) if len(hit) else "—"
        rows.append([variant, f"{len(hit)}/{len(g)}", pm(g["f1_macro_r3"].mean(), g["f1_macro_r3"].std()),
                     rounds, mib, _epsilon_cell(g)])
    return md_table(["variant", "seeds at target", "macro-F1 after 3 rounds", "rounds to target",
                     "MiB up per client to target", "epsilon"], rows)


def round_curves(hist: pd.DataFrame) -> pd.DataFrame:
    """Per method and round, mean over seeds: accuracy, macro-F1 and the cumulative measured MiB per
    client, up and down (the data of ``dvc plots``; round 0 is the initial model)."""
    h = hist.sort_values(["method", "seed", "round"]).copy()
    for direction in ("up", "down"):
        h[f"cum_mib_{direction}_per_client"] = h.groupby(["method", "seed"])[f"bytes_{direction}_per_client"].cumsum() / MIB
    cols = ["accuracy", "f1_macro", "cum_mib_up_per_client", "cum_mib_down_per_client"]
    return h.groupby(["method", "round"], as_index=False, sort=False)[cols].mean()


def demote(markdown: str, levels: int = 1) -> str:
    """Headings one level (or ``levels``) deeper, so a stage's Markdown nests under a section.

    >>> demote("# A\\ntext\\n## B")
    '## A\\ntext\\n### B'
    """
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in markdown.splitlines())


# ---------------------------------------------------------------- reading the files

def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def run_records(base: Path) -> pd.DataFrame:
    """``group``, ``run``, ``wall_time_s`` of every ``run.json`` under ``base`` (one profile's results)."""
    rows = []
    for group in results.GROUPS:
        for path in sorted((base / group).glob("*/run.json")):
            rec = json.loads(path.read_text())
            rows.append({"group": group, "run": path.parent.name, "wall_time_s": float(rec["wall_time_s"]),
                         "client_sizes": rec.get("client_sizes"), "method": rec.get("method")})
    return pd.DataFrame(rows, columns=["group", "run", "wall_time_s", "client_sizes", "method"])


def _section(title: str, source: str, body: str | None) -> str:
    """A ``## title`` section naming its files (comma-separated in ``source``); without a body, says
    that the profile did not produce them."""
    files = ", ".join(f"`{s.strip()}`" for s in source.split(","))
    return f"## {title}\n\n" + (f"From {files}.\n\n{body}" if body is not None else f"{files}: not run in this profile.")


def render(profile: str, *, root: str | Path = ".") -> str:
    """The Markdown of ``results/<profile>/REPORT.md``, read from the results files under ``root``."""
    root = Path(root)
    base = root / "results" / profile
    if not base.is_dir():
        raise FileNotFoundError(f"{base} does not exist: run the pipeline for profile {profile!r} first")
    parts = [f"# Report of profile `{profile}`\n\nGenerated by `python -m medhe.profile_report {profile}` "
             "(the pipeline's `report` stage) from the files it names; the paper's numbers appear only as "
             "the claimed side of the ledger. Regenerate it, never edit it."]

    config = base / "config.json"
    parts.append(_section("Configuration", "config.json",
                          config_table(json.loads(config.read_text())) if config.is_file() else None))

    claims_md = base / "claims.md"
    parts.append(_section("Claims ledger, with its rules", "claims.md",
                          demote(claims_md.read_text().split("\n", 1)[1].strip()) if claims_md.is_file() else None))

    records = run_records(base)
    repro = base / "repro_time.json"
    whole = ""
    if repro.is_file():
        rec = json.loads(repro.read_text())
        whole = (f"The whole pipeline (`make repro`, `repro_time.json`): {num(rec['pipeline_s'] / 60, 1)} min on "
                 f"{rec['cpus']} cores, {rec['stages_run']} of {rec['stages_total']} stages run.\n\n")
    parts.append(_section(
        "Wall time", "<group>/*/run.json",
        whole + "Sum of the training runs' own wall times (`wall_time_s`) on the machine that ran them (notebook "
        "start-up and the table, benchmark and figure stages not included).\n\n" + wall_time_table(records)
        if len(records) else None))

    stats = base / "stats"
    summary, trials = _csv(stats / "summary.csv"), _csv(stats / "trials.csv")
    body = None
    if summary is not None and trials is not None:
        body = ("Mean ± std (ddof=1) over seeds; 95 % t-interval on macro-F1. Majority class: accuracy "
                f"{num(trials['majority_accuracy'].mean())}, macro-F1 {num(trials['majority_f1_macro'].mean())}.\n\n"
                + trial_table(summary, trials))
        tests = _csv(stats / "tests.csv")
        if tests is not None:
            body += "\n\nPaired tests by seed:\n\n" + paired_tests_table(tests)
    parts.append(_section("Trials", "stats/summary.csv, stats/trials.csv, stats/tests.csv", body))

    phases = _csv(stats / "phases.csv")
    parts.append(_section("Time per phase", "stats/phases.csv",
                          "Mean seconds per trial run; `untimed` is the wall time outside every timed phase.\n\n"
                          + phase_table(phases) if phases is not None else None))

    try:
        hist = results.histories(profile, "runs", root=root / "results")
    except FileNotFoundError:
        hist = None
    parts.append(_section("Density per round", "runs/*/history.csv",
                          "Fraction of the model's entries each client sends in each round, mean over seeds.\n\n"
                          + density_table(hist) if hist is not None and "density" in hist and hist["density"].notna().any()
                          else None))

    comm = base / "comm"
    byte_rows = _csv(comm / "bytes.csv")
    body = None
    if byte_rows is not None:
        body = "\n\n".join(f"Group `{group}`{' (the paper-sized model, one round)' if group == 'papersize' else ''}:"
                           f"\n\n{bytes_table(g)}" for group, g in byte_rows.groupby("group", sort=False))
    parts.append(_section("Bytes, measured by serialising every message", "comm/bytes.csv", body))

    bfv, target = _csv(base / "bench" / "bfv.csv"), _csv(base / "bench" / "bfv_target.csv")
    parts.append(_section("Exact BFV aggregation at the paper's size", "bench/bfv.csv, bench/bfv_target.csv",
                          bfv_table(bfv, target) if bfv is not None and target is not None else None))

    mia = base / "mia"
    mia_summary, lira = _csv(mia / "summary.csv"), _csv(mia / "lira_attacks.csv")
    lira_prior = _csv(mia / "lira_prior.csv")
    body = None
    if mia_summary is not None:
        body = mia_table(mia_summary)
        if "prior_success_rate" in mia_summary:
            body += ("\n\nThe class-prior model gives every record the training set's class frequencies, so it "
                     "knows no record; the confidence attack against it sees only each record's label "
                     "(`mia/prior.csv`, `medhe.prior_attack`). Where it differs from 0.5, the members and "
                     "non-members of the split differ in label mix; an attack on a model that collapsed to the "
                     "majority class reads against it.")
        if lira is not None and len(lira):
            body += ("\n\nEvery attack on the LiRA targets (`mia/lira_attacks.csv`; `class_prior`: "
                     "`mia/lira_prior.csv`):\n\n" + lira_table(lira, lira_prior))
    parts.append(_section("Membership inference", "mia/summary.csv", body))

    sweep = _csv(comm / "sweep.csv")
    parts.append(_section("Sparsity sweep", "comm/sweep.csv", sweep_table(sweep) if sweep is not None else None))

    conv, conv_hist = _csv(stats / "convergence.csv"), _csv(stats / "convergence_history.csv")
    parts.append(_section("Convergence", "stats/convergence.csv, stats/convergence_history.csv",
                          convergence_table(conv, conv_hist) if conv is not None and conv_hist is not None else None))

    noniid = _csv(stats / "noniid.csv")
    sizes = {r.method: r.client_sizes for r in records[records["group"] == "noniid"].itertuples()}
    parts.append(_section("Non-IID", "stats/noniid.csv, stats/trials.csv",
                          noniid_table(noniid, trials, sizes) if noniid is not None and trials is not None else None))

    scale = _csv(comm / "scale.csv")
    body = None
    if scale is not None:
        scale_runs = results.collect(profile, "scale", root=root / "results", params=False)
        f1 = {(r.method, int(r.run_dir.split("clients")[1].split("-")[0])): r.f1_macro for r in scale_runs.itertuples()}
        body = scale_table(scale, f1)
    parts.append(_section("Client count", "comm/scale.csv", body))

    frontier = _csv(comm / "frontier.csv")
    parts.append(_section("Accuracy against bytes (frontier)", "comm/frontier.csv",
                          frontier_table(frontier) if frontier is not None else None))

    to_target = _csv(comm / "to_target.csv")
    parts.append(f"## Rounds and bytes to the target\n\n{to_target_table(to_target)}")

    security = _csv(base / "security" / "params.csv")
    parts.append(_section("CKKS parameters and packing", "security/params.csv, bench/ckks_params.csv",
                          security_table(security, _csv(base / "bench" / "ckks_params.csv"))
                          if security is not None else None))

    statement = base / "privacy" / "statement.json"
    parts.append(_section("Differential privacy", "privacy/statement.json",
                          privacy_table(json.loads(statement.read_text())) if statement.is_file() else None))

    figures = sorted((root / "figures" / profile).glob("*.png"))
    links = "\n".join(f"![{p.stem}]({os.path.relpath(p, base).replace(os.sep, '/')})" for p in figures)
    parts.append(f"## Figures\n\n{links}" if figures else "## Figures\n\nNo figure written yet.")
    return "\n\n".join(parts) + "\n"


def write(profile: str, *, root: str | Path = ".") -> Path:
    """Write ``results/<profile>/REPORT.md`` under ``root``; returns its path."""
    path = Path(root) / "results" / profile / "REPORT.md"
    path.write_text(render(profile, root=root))
    return path


def write_round_curves(profile: str, *, root: str | Path = ".") -> Path:
    """Write ``results/<profile>/plots/rounds.csv``, :func:`round_curves` of the trials; returns its path."""
    path = Path(root) / "results" / profile / "plots" / "rounds.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    round_curves(results.histories(profile, "runs", root=Path(root) / "results")).to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--root", default=".", help="project root holding results/ and figures/")
    args = ap.parse_args(argv)
    print(write_round_curves(args.profile, root=args.root))
    print(write(args.profile, root=args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
