"""Mutation check of the tests that guard the published numbers.

Each mutant is one plausible bug in ``src/medhe`` (or in ``tools/repro.sh``): a wrong sensitivity,
noise that is not minimal, an attack chosen on the evaluation split, MiB computed as 10^6 bytes, and
so on. For every mutant, a scratch copy of the repository's tracked files gets the one-line change,
and the tests named beside it run there; the mutant is *killed* if they fail. A mutant that survives
is a test that cannot see that bug.

    python tools/mutants.py                      # every mutant; table on stdout
    python tools/mutants.py --only wilcoxon-zero-method --out mutants.csv

The unmutated copy runs the same tests first: they must pass there, or the check stops.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str          # file in the repository
    old: str           # must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest arguments (files, node ids, -k expressions)
    bug: str           # what the mutant breaks, in words


MUTANTS: tuple[Mutant, ...] = (
    Mutant("rdp-event-noise", "src/medhe/privacy.py",
           "gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)",
           "gaussian = dp_accounting.GaussianDpEvent(noise_multiplier * 1.05)",
           ("tests/test_privacy.py", "-k", "closed_forms or mironov"),
           "the accountant sees 5 % more noise than is drawn"),
    Mutant("noise-for-epsilon-not-minimal", "src/medhe/privacy.py",
           "            lo = mid\n    return hi", "            lo = mid\n    return hi * 1.2",
           ("tests/test_privacy.py", "-k", "noise_for_epsilon"),
           "noise_for_epsilon returns a safe but 20 % too large multiplier"),
    Mutant("per-client-std-no-sqrt-n", "src/medhe/privacy.py",
           "return z * c / math.sqrt(int(num_clients))", "return z * c",
           ("tests/test_privacy.py", "-k", "transport_draws"),
           "each client draws the whole sum's std (sqrt(n) too much noise)"),
    Mutant("sensitivity-half", "src/medhe/privacy.py",
           "    return c / int(num_public)", "    return c / (2 * int(num_public))",
           ("tests/test_dp_release.py",),
           "noise calibrated to half the add/remove sensitivity"),
    Mutant("record-std-from-clip-norm", "src/medhe/fl/simulate.py",
           "        sensitivity=sensitivity_fixed_denominator(clip_norm=P.dp.clip_norm, num_public=P.data.num_clients),\n",
           "        sensitivity=P.dp.clip_norm,\n",
           ("tests/test_dp_release.py", "-k", "records_the_noise_std"),
           "run.json states the noise of sensitivity C instead of the drawn C / n"),
    Mutant("own-alignment-with-noise", "src/medhe/fl/methods.py",
           'if self.alignment == "own" and self.noise:', "if False:",
           ("tests/test_fl.py", "-k", "refuses_inconsistent"),
           "alignment 'own' with noise accepted (too little noise in the sum)"),
    Mutant("union-alignment-misplaced", "src/medhe/fl/client.py",
           "v = align_to_union(p.indices, p.values, support)",
           "v = align_to_union(p.indices, p.values[::-1], support)",
           ("tests/test_transport.py", "-k", "equal_the_reference"),
           "sparse values land on the wrong union positions"),
    Mutant("noise-to-signal-inverted", "src/medhe/fl/transport.py",
           "return n_norm / s_norm if s_norm > 0 else math.inf", "return s_norm / n_norm if s_norm > 0 else math.inf",
           ("tests/test_dpsgd.py", "-k", "noise_to_signal"),
           "the recorded noise-to-signal ratio is its inverse"),
    Mutant("worst-case-on-evaluation", "src/medhe/attacks/data.py",
           "return max(results, key=lambda r: r.calibration_success_rate)",
           "return max(results, key=lambda r: r.success_rate)",
           ("tests/test_attacks.py", "-k", "worst_case"),
           "the worst-case attack is selected on the split it is scored on"),
    Mutant("lira-shadow-half-size", "src/medhe/attacks/evaluate.py",
           "rng.choice(pool, size=train_size, replace=False)", "rng.choice(pool, size=train_size // 2, replace=False)",
           ("tests/test_attacks.py", "-k", "overfit_model_leaks"),
           "offline LiRA shadows train on half the target's records"),
    Mutant("lira-per-example-variance-pooled", "src/medhe/attacks/lira.py",
           "std = np.where(count >= 2, np.sqrt(sq / np.maximum(count - 1, 1)), pooled)",
           "std = np.full_like(mean, pooled)",
           ("tests/test_attacks.py", "-k", "lira"),
           "per-example variance mode silently uses the pooled variance"),
    Mutant("wilcoxon-zero-method", "src/medhe/stats.py",
           'w = sps.wilcoxon(d, zero_method="wilcox"', 'w = sps.wilcoxon(d, zero_method="zsplit"',
           ("tests/test_stats.py",),
           "Wilcoxon keeps zero differences while reporting the nonzero pairs"),
    Mutant("mib-as-megabytes", "src/medhe/results.py",
           'out["mib_up_per_client_round"] = out["bytes_up_per_client"] / 2**20',
           'out["mib_up_per_client_round"] = out["bytes_up_per_client"] / 1e6',
           ("tests/test_report.py",),
           "MiB computed as 10^6 bytes"),
    Mutant("ckks-table-bytes-per-value", "src/medhe/ckks/table.py",
           "bytes_per_value=len(one[0]) / (n // 2),", "bytes_per_value=len(one[0]) / n,",
           ("tests/test_security_table.py",),
           "bytes per value divided by N instead of the N/2 slots"),
    Mutant("claim-slot-packing-strict", "src/medhe/claims.py",
           'REPRODUCED if b >= c["values_per_slot"] else NOT_REPRODUCED',
           'REPRODUCED if b > c["values_per_slot"] else NOT_REPRODUCED',
           ("tests/test_claims.py", "-k", "each_rule_returns"),
           "slot-packing claim not reproduced when exactly met"),
    Mutant("claim-ciphertexts-any", "src/medhe/claims.py",
           "ok = all(_within(got[k], c[k]) for k in got)\n    return f\"packed",
           "ok = any(_within(got[k], c[k]) for k in got)\n    return f\"packed",
           ("tests/test_claims.py", "-k", "each_rule_returns"),
           "ciphertext claim reproduced when only one of the two counts matches"),
    Mutant("error-feedback-drops-residual", "src/medhe/sparsify.py",
           "            self._residual = acc\n", "            self._residual = np.zeros_like(acc)\n",
           ("tests/test_sparsify.py",),
           "error feedback forgets what was not sent"),
    Mutant("skellam-rdp-term", "src/medhe/skellam.py",
           "return a * d2**2 / (2 * mu) + min(", "return a * d2**2 / (4 * mu) + min(",
           ("tests/test_skellam.py",),
           "Skellam RDP bound with half its leading term"),
    Mutant("adaptive-clip-wrong-direction", "src/medhe/clipping.py",
           "return float(bound * math.exp(-lr * (frac - gamma)))", "return float(bound * math.exp(lr * (frac - gamma)))",
           ("tests/test_clipping.py",),
           "the adaptive bound moves away from the target quantile"),
    Mutant("target-strictly-above", "src/medhe/targets.py",
           "hit = [i for i in range(len(rounds)) if f1[i] >= target]",
           "hit = [i for i in range(len(rounds)) if f1[i] > target]",
           ("tests/test_global_target.py",),
           "a round exactly at the target does not count as reaching it"),
    Mutant("early-stop-strictly-above", "src/medhe/fl/simulate.py",
           'reached is None and row["f1_macro"] >= target_macro_f1', 'reached is None and row["f1_macro"] > target_macro_f1',
           ("tests/test_global_target.py", "-k", "stops"),
           "a run does not stop at the round whose macro-F1 equals the target"),
    Mutant("repro-interrupt-loses-lock", "tools/repro.sh",
           "  wait\n  save_lock\n", "  wait\n",
           ("tests/test_repro.py", "-k", "interrupted"),
           "an interrupted make repro does not save the finished stages"),
    Mutant("comm-stage-misses-targets", "dvc.yaml",
           "      - src/medhe/targets.py\n      - src/medhe/results.py\n      - src/medhe/report.py\n      - results/${profile}/runs\n      - results/${profile}/papersize",
           "      - src/medhe/results.py\n      - src/medhe/report.py\n      - results/${profile}/runs\n      - results/${profile}/papersize",
           ("tests/test_dvc_deps.py", "-k", "every_stage"),
           "the comm stage does not rerun when medhe.targets changes"),
)


def _copy_tracked(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def _pytest(copy: Path, args: tuple[str, ...]) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop("MEDHE_TEST_TIMES", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header",
                           "-W", "ignore", *args], cwd=copy, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return proc.returncode, lines[-1] if lines else proc.stderr.strip()[-200:]


def run(mutants: tuple[Mutant, ...]) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="medhe-mutants-") as tmp:
        copy = Path(tmp)
        _copy_tracked(copy)
        rows = []
        for m in mutants:
            target = copy / m.path
            original = target.read_text()
            if original.count(m.old) != 1:
                raise SystemExit(f"mutant {m.name}: the text to replace occurs {original.count(m.old)} times in "
                                 f"{m.path} (must be once); update the mutant to the code")
            code, summary = _pytest(copy, m.tests)
            if code != 0:
                raise SystemExit(f"mutant {m.name}: its tests fail on the unmutated code ({summary})")
            target.write_text(original.replace(m.old, m.new))
            t0 = time.perf_counter()
            try:
                code, summary = _pytest(copy, m.tests)
            finally:
                target.write_text(original)
            rows.append({"mutant": m.name, "file": m.path, "bug": m.bug, "tests": " ".join(m.tests),
                         "killed": code != 0, "pytest": summary, "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{'killed  ' if code else 'SURVIVED'} {m.name:36s} {summary}", flush=True)
        return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="mutant names (default: all)")
    ap.add_argument("--out", type=Path, help="write the table as CSV")
    a = ap.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = sorted(set(a.only or ()) - set(known))
    if unknown:
        ap.error(f"unknown mutant(s) {unknown}; known: {sorted(known)}")
    rows = run(tuple(known[n] for n in a.only) if a.only else MUTANTS)
    if a.out:
        with open(a.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    survivors = [r["mutant"] for r in rows if not r["killed"]]
    print(f"{len(rows) - len(survivors)} of {len(rows)} mutants killed" + (f"; survived: {survivors}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
