"""Do the runs in the working tree give the same results as the same runs at an earlier git revision?

A code change that should not touch the arithmetic (a faster index dedupe, new timers) must leave
every seeded result as it was. This script checks that claim run by run. For each run of a group
whose record exists at ``--against``, it compares the final metrics that depend on the model
(accuracy, F1, loss, distance moved, epsilon) and the membership-inference table (``mia.csv``) for
exact equality. Times and ciphertext byte counts are not compared: times vary, and SEAL
compresses each fresh random ciphertext when it serialises it, so byte counts vary by a few
hundred bytes.

    python tools/compare_runs.py full --against HEAD~1     # every run of results/full/runs

Exit status 1 if any compared run differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("accuracy", "f1_macro", "f1_binary", "loss", "model_change_l2", "epsilon_rdp", "epsilon_pld")


def _git_show(rev: str, rel: Path) -> str | None:
    out = subprocess.run(["git", "show", f"{rev}:{rel.as_posix()}"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def compare(profile: str, *, against: str, group: str = "runs") -> list[tuple[str, dict]]:
    """(run name, differences) for every run with a record at ``against``; empty differences = identical."""
    out = []
    for run_json in sorted((ROOT / "results" / profile / group).glob("*/run.json")):
        folder = run_json.parent.relative_to(ROOT)
        old_text = _git_show(against, folder / "metrics.json")
        if old_text is None:
            continue
        old, new = json.loads(old_text), json.loads((ROOT / folder / "metrics.json").read_text())
        diffs = {k: (old.get(k), new.get(k)) for k in KEYS if old.get(k) != new.get(k)}
        old_mia = _git_show(against, folder / "mia.csv")
        new_mia = (ROOT / folder / "mia.csv").read_text() if (ROOT / folder / "mia.csv").is_file() else None
        if old_mia != new_mia:
            diffs["mia.csv"] = ("differs", "")
        out.append((folder.name, diffs))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--against", required=True, metavar="REV", help="git revision holding the earlier results")
    ap.add_argument("--group", default="runs")
    args = ap.parse_args(argv)
    rows = compare(args.profile, against=args.against, group=args.group)
    for name, diffs in rows:
        print(f"{name}: " + ("identical" if not diffs else
                             "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diffs.items())))
    n_diff = sum(bool(d) for _, d in rows)
    print(f"{len(rows) - n_diff} identical, {n_diff} differ (of {len(rows)} runs with a record at {args.against})")
    return 1 if n_diff else 0


if __name__ == "__main__":
    sys.exit(main())
