"""Seconds per step of one aggregation round outside encryption, at the embedded model's size.

Run: ``.venv/bin/python benchmarks/round_steps.py [--size 22713986] [--sparsity 0.9] [--clients 5]``.

The steps around encryption (index sets, alignment to the union, DP noise, quantisation, error
feedback) were once outside every timed phase of the CKKS and BFV transports and showed up as
``untimed`` in the stats stage's ``phases.csv`` (about 140 s of a 580 s MedHE run in the full
profile); they are now the phases ``align``, ``noise`` and ``quantise`` of every transport.
This benchmark times those steps with the package's own functions on synthetic sparse updates
(random index sets, Gaussian values; one round, every client) and prints the seconds per step.
The last two lines compare ``np.unique`` with :func:`medhe.ckks.sparse.sorted_unique` on the
merged index sets: NumPy 2.4's ``np.unique`` made index alignment the slowest step of a MedHE
round (measured 33 s of 37 s per round).
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import numpy as np

from medhe import rng
from medhe.ckks.sparse import sorted_unique
from medhe.comm import ByteLedger
from medhe.fl.transport import GaussianShares, Payload, align_payloads, noisy_weighted, quantisation_bound, quantise_round


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=22_713_986, help="model parameters (MiniLM: 22,713,986)")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if not 0.0 <= args.sparsity < 1.0:
        raise SystemExit(f"--sparsity must be in [0, 1), got {args.sparsity}")
    gen = rng.generator(args.seed, "bench-round-steps")
    k = int(round((1.0 - args.sparsity) * args.size))
    payloads = []
    for _ in range(args.clients):
        idx = np.sort(gen.choice(args.size, size=k, replace=False)).astype(np.int64)
        payloads.append(Payload(values=gen.normal(0.0, 1e-3, size=k).astype(np.float32), indices=idx))
    weights = [1.0 / args.clients] * args.clients
    noise = GaussianShares(std=1e-3, seed=args.seed, round_=1)
    times: dict[str, float] = {}

    @contextmanager
    def step(name: str):
        t = time.perf_counter()
        yield
        times[name] = times.get(name, 0.0) + time.perf_counter() - t

    with step("index sets: encode, decode, union, align"):
        union, vectors = align_payloads(payloads, alignment="union", size=args.size, ledger=ByteLedger(), round_=1)
    with step("DP noise shares + weighting"):
        xs = noisy_weighted(vectors, weights, noise)
    bound = quantisation_bound(clip_norm=1.0, weights=weights, num_values=union.size, range_factor=4.0,
                               noise_std=noise.std)
    with step("quantise, feedback, statistics"):
        quantise_round(payloads, xs, weights, union, bits=args.bits, bound=bound, size=args.size)
    merged = np.concatenate([p.indices for p in payloads])
    with step("(np.unique of the merged index sets)"):
        expected = np.unique(merged)
    with step("(sorted_unique of the same, as the union uses)"):
        got = sorted_unique(merged)
    assert np.array_equal(expected, got)
    print(f"one round, {args.clients} clients, {args.size:,} parameters, s = {args.sparsity}: k = {k:,} per client, "
          f"union {union.size:,} ({union.size / args.size:.1%})")
    for name, sec in times.items():
        print(f"  {name:45s} {sec:7.2f} s")
    print(f"  {'total of the round steps':45s} {sum(v for n, v in times.items() if not n.startswith('(')):7.2f} s")


if __name__ == "__main__":
    main()
