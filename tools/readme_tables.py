"""Interim tables of a long profile for the README, from the runs made with the profile's current parameters.

While a long profile runs across sessions, ``results/<profile>/runs`` can hold runs made before
a parameter change (their ``run.json`` records other parameters). This script keeps only the runs
whose parameters (all sections but ``pipeline``) match ``profiles/<profile>.yaml`` now, says how many it left out, and
renders the trial, paired-test, membership-inference, bytes and time-per-phase tables that the pipeline's
``stats``, ``mia`` and ``comm`` stages will write once every trial is done.

    python tools/readme_tables.py full            # print the Markdown
    python tools/readme_tables.py full --write    # replace README.md between <!-- full:begin/end -->
    python tools/readme_tables.py full --since f47ad37   # only runs made by that commit or later

With ``--ledger`` it renders the profile's claims ledger instead (``results/<profile>/claims.csv``,
written by the pipeline's ``claims`` stage), between ``<!-- ledger:<profile>:begin/end -->``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from medhe import claims, params, report, results

ROOT = Path(__file__).resolve().parents[1]


def made_since(commit: str, run_commit: str | None) -> bool:
    """True if the run's recorded git commit (``-dirty`` allowed) is ``commit`` or descends from it."""
    if not run_commit:
        return False
    sha = run_commit.removesuffix("-dirty")
    return subprocess.run(["git", "merge-base", "--is-ancestor", commit, sha], cwd=ROOT,
                          capture_output=True).returncode == 0


def current_runs(profile: str, group: str, dest: Path, *, since: str | None = None) -> tuple[int, int]:
    """Link the runs of ``group`` made with the profile's current parameters (and, with ``since``, by
    code at or after that commit) into ``dest``; (kept, left out)."""
    def relevant(p: dict) -> dict:  # the pipeline section says what runs, not how a run runs
        return {k: v for k, v in p.items() if k != "pipeline"}

    want = relevant(params.load(ROOT / "profiles" / f"{profile}.yaml").to_dict())
    kept = stale = 0
    for run_json in sorted((ROOT / "results" / profile / group).glob("*/run.json")):
        run = json.loads(run_json.read_text())
        fresh = since is None or made_since(since, run.get("environment", {}).get("git_commit"))
        if fresh and relevant(run["params"]) == want:
            link = dest / profile / group / run_json.parent.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(run_json.parent)
            kept += 1
        else:
            stale += 1
    return kept, stale


def _pm(row: pd.Series | None, digits: int = 3) -> str:
    if row is None:
        return ""
    return f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"


def _md(cols: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of already formatted cells."""
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] +
                     ["| " + " | ".join(r) + " |" for r in rows])


def trial_table(summary: pd.DataFrame, trials: pd.DataFrame) -> str:
    rows = []
    for method, g in summary.groupby("method"):
        by = {r["metric"]: r for _, r in g.iterrows()}
        f1, wall = by["f1_macro"], by.get("wall_time_s")
        t = trials[trials["method"] == method]
        moved = "" if "model_change_l2" not in t else f"{int((t['model_change_l2'] > 0).sum())} of {len(t)}"
        rows.append([method, str(int(f1["n"])), _pm(by["accuracy"]), f"{_pm(f1)} [{f1['ci_low']:.3f}, {f1['ci_high']:.3f}]",
                     _pm(by["f1_binary"]), moved, "" if wall is None else format(wall["mean"], ".0f")])
    return _md(["method", "n", "accuracy", "macro-F1 (95 % CI)", "binary F1", "model moved", "run wall time (s)"], rows)


def _p(p: float, digits: str) -> str:
    return "undefined" if pd.isna(p) else format(p, digits)


def tests_table(tests: pd.DataFrame) -> str:
    rows = [[f"{r.a} vs {r.b}", r.metric, str(r.n_pairs), f"{r.mean_diff:+.3f}", _p(r.p_ttest, ".2g"),
             _p(r.p_wilcoxon, ".3g")] for r in tests.itertuples()]
    return _md(["a vs b", "metric", "pairs", "mean diff", "paired t p", "Wilcoxon p"], rows)


def mia_table(summary: pd.DataFrame) -> str:
    rows = [[method, str(len(g)), f"{g['worst_success_rate'].mean():.3f} ± {g['worst_success_rate'].std():.3f}",
             f"{g['max_auc'].mean():.3f} ± {g['max_auc'].std():.3f}", f"{g['max_tpr_at_1pct_fpr'].mean():.3f}"]
            for method, g in summary.groupby("method")]
    return _md(["method", "trials", "worst-case success (paper's 4 attacks)", "max AUC", "max TPR at 1 % FPR"], rows)


def bytes_table(comm: pd.DataFrame) -> str:
    rows = []
    for method, g in comm.groupby("method"):
        ct = g["ciphertexts_per_client"].mean()
        rows.append([method, f"{g['mib_up_per_client_round'].mean():,.1f}", f"{g['mib_down_per_client_round'].mean():,.1f}",
                     "" if pd.isna(ct) else f"{ct:,.0f}"])
    return _md(["method", "MiB up / client / round", "MiB down / client / round", "ciphertexts / client"], rows)


def phase_table(phases: pd.DataFrame) -> str:
    """Mean seconds per run by phase; ``untimed`` is the wall time outside every timed phase."""
    wide = phases.pivot(index="method", columns="phase", values="mean_s")
    order = [c for c in ("local_training", "sparsify_clip", "align", "noise", "quantise", "encrypt", "aggregate",
                         "decrypt", "evaluate", "setup")
             if c in wide.columns]
    order += sorted(c for c in wide.columns if c not in order and c != "untimed") + ["untimed"]
    rows = [[method, *("" if pd.isna(r[c]) else f"{r[c]:.0f}" for c in order), f"{r[order].sum():.0f}"]
            for method, r in wide.iterrows()]
    return _md(["method", *order, "wall"], rows)


def render(profile: str, *, since: str | None = None) -> str:
    code = "" if since is None else f" and code from commit {since} on"
    with tempfile.TemporaryDirectory() as tmp:
        kept, stale = current_runs(profile, "runs", Path(tmp), since=since)
        if not kept:
            return f"No `{profile}` trial has run with the current parameters{code} yet ({stale} older runs left out)."
        stats = report.stats_tables(profile, root=tmp)
        mia = report.mia_tables(profile, root=tmp)
        comm = results.comm_table(results.histories(profile, "runs", root=tmp), results.collect(profile, "runs", root=tmp))
    parts = [f"{kept} trial runs with the current parameters{code} ({stale} older runs left out).",
             trial_table(stats["summary"], stats["trials"])]
    if "tests" in stats:
        parts.append(tests_table(stats["tests"]))
    parts += [mia_table(mia["summary"]), bytes_table(comm), phase_table(stats["phases"])]
    return "\n\n".join(parts)


def render_ledger(profile: str) -> str:
    path = ROOT / "results" / profile / "claims.csv"
    if not path.is_file():
        raise SystemExit(f"{path.relative_to(ROOT)} not found: run the pipeline's claims stage for profile {profile!r}")
    rows = claims.from_csv(path)
    return f"{rows[0].configuration}\n\n{claims.table_markdown(rows)}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--ledger", action="store_true", help="render the profile's claims ledger instead")
    ap.add_argument("--write", action="store_true", help="replace the README between the profile's markers")
    ap.add_argument("--since", metavar="COMMIT", help="keep only runs made by this commit or its descendants")
    args = ap.parse_args(argv)
    md = render_ledger(args.profile) if args.ledger else render(args.profile, since=args.since)
    if not args.write:
        print(md)
        return 0
    readme = ROOT / "README.md"
    text = readme.read_text()
    tag = f"ledger:{args.profile}" if args.ledger else args.profile
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if begin not in text or end not in text:
        print(f"README.md lacks the markers {begin} ... {end}", file=sys.stderr)
        return 2
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{md}\n{end}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
