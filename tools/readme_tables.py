"""Regenerate the README's generated blocks from results files: every measured number in the README.

A block is ``<!-- <kind>:<profile>:begin -->`` ... ``<!-- <kind>:<profile>:end -->``; its body is
rebuilt from ``results/<profile>/`` by the renderer of its kind:

- ``times``: the wall time of ``make repro PROFILE=<profile>`` (``results/<profile>/repro_time.json``,
  written by ``tools/repro.sh`` when the pipeline finishes) and of ``make test``
  (``results/test_time.json``, written by ``make test RECORD=1``: the wall time and the Flower tests' part);
- ``train-time``: the training runs' wall time summed from every ``results/<profile>/*/*/run.json``;
- ``ledger``: the claims ledger's verdict table (``results/<profile>/claims.csv``);
- ``to-target``: macro-F1 after 3 rounds, rounds and MiB per client to the target accuracy, and
  epsilon, per method (``results/<profile>/comm/to_target.csv``);
- ``stale``: the stages whose committed results ran on older code or parameters, or never ran
  (``tools/stage_status.py``: ``dvc status`` against ``locks/<profile>.lock``).

A missing file renders as "not yet measured", never as a typed number.

    python tools/readme_tables.py            # rewrite README.md's blocks
    python tools/readme_tables.py --check    # exit 1 if a block differs from its files
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from medhe import profile_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stage_status  # noqa: E402  (the sibling script)

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- (?P<kind>[a-z-]+):(?P<profile>[a-z]+):begin -->\n.*?<!-- (?P=kind):(?P=profile):end -->",
                   re.DOTALL)
NOT_MEASURED = "not yet measured"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def times(profile: str, root: Path) -> str:
    """One line per command: its measured wall time and the cores it ran on."""
    lines = []
    repro = root / "results" / profile / "repro_time.json"
    if repro.is_file():
        rec = json.loads(repro.read_text())
        lines.append(f"- `make repro` (profile `{profile}`): pipeline {_minutes(rec['pipeline_s'])} on "
                     f"{rec['cpus']} cores, {rec['stages_run']} of {rec['stages_total']} stages run"
                     " (set-up extra)")
    else:
        lines.append(f"- `make repro` (profile `{profile}`): {NOT_MEASURED}")
    test = root / "results" / "test_time.json"
    if test.is_file():
        rec = json.loads(test.read_text())
        line = f"- `make test`: {_minutes(rec['seconds'])} on {rec['cpus']} cores"
        if "flower_s" in rec:
            line += (f", of which the Flower engine's tests {_minutes(rec['flower_s'])} "
                     f"(`make test-core` leaves them out)")
        lines.append(line)
    else:
        lines.append(f"- `make test`: {NOT_MEASURED}")
    return "\n".join(lines)


def train_time(profile: str, root: Path) -> str:
    """The profile's training wall time, summed over its run records, and how many runs that is."""
    records = profile_report.run_records(root / "results" / profile)
    if not len(records):
        return f"- profile `{profile}`: {NOT_MEASURED}"
    return (f"- profile `{profile}`: {records['wall_time_s'].sum() / 3600:.1f} h of training over {len(records)} "
            "runs (each run's `wall_time_s`; per group in its REPORT.md)")


def ledger(profile: str, root: Path) -> str:
    """The verdict counts and one row per claim: id, claim, verdict (the measured side is in REPORT.md)."""
    path = root / "results" / profile / "claims.csv"
    if not path.is_file():
        return f"Ledger of profile `{profile}`: {NOT_MEASURED}."
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    counts = rows["verdict"].value_counts()
    head = f"{rows['configuration'].iloc[0]}. Verdicts: " + ", ".join(f"{k}: {v}" for k, v in counts.items())
    table = profile_report.md_table(["id", "claim (the paper's)", "verdict"],
                                    [[r.id, r.claim, f"**{r.verdict}**"] for r in rows.itertuples()])
    return f"{head}\n\n{table}"


# the variants the README shows (the front door stays short); REPORT.md has every variant and ablation
README_VARIANTS = ("fedavg", "topk", "medhe_no_dp", "medhe_global_no_dp", "medhe_bfv_global_no_dp", "medhe",
                   "medhe_global")


def to_target(profile: str, root: Path) -> str:
    """Per method of :data:`README_VARIANTS`: macro-F1 after 3 rounds, rounds and MiB per client to the
    target, epsilon; how many more variants the profile's REPORT.md shows."""
    path = root / "results" / profile / "comm" / "to_target.csv"
    df = pd.read_csv(path) if path.is_file() else None
    if df is None or not len(df):
        return profile_report.to_target_table(df)
    shown = df[df["variant"].isin(README_VARIANTS)]
    table = profile_report.to_target_table(shown)
    rest = sorted(set(df["variant"]) - set(shown["variant"]))
    if rest:
        table += (f"\n\n{len(rest)} more variants (sparsity, bit width, ablations) in "
                  f"[`results/{profile}/REPORT.md`](results/{profile}/REPORT.md).")
    return table


def stale(profile: str, root: Path) -> str:
    """How many of the profile's stages ran on older code or parameters, or never ran, per stage family."""
    stages, old = stage_status.stage_status(profile, root=root)
    return f"- profile `{profile}`: {stage_status.summary(stages, old)}"


RENDERERS: dict[str, Callable[[str, Path], str]] = {"times": times, "train-time": train_time, "ledger": ledger,
                                                    "to-target": to_target, "stale": stale}


def regenerate(text: str, *, root: Path = ROOT) -> str:
    """``text`` with every generated block rebuilt from the results files under ``root``."""
    def rebuild(m: re.Match) -> str:
        kind, profile = m["kind"], m["profile"]
        if kind not in RENDERERS:
            raise ValueError(f"unknown README block kind {kind!r}: one of {sorted(RENDERERS)}")
        return (f"<!-- {kind}:{profile}:begin -->\n{RENDERERS[kind](profile, root)}\n"
                f"<!-- {kind}:{profile}:end -->")
    return BLOCK.sub(rebuild, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 if a block is stale")
    args = ap.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = regenerate(text)
    if args.check:
        if new != text:
            print("README.md's generated blocks differ from the results files: run python tools/readme_tables.py",
                  file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
