"""Seconds per step of one aggregation round outside encryption, at the embedded model's size.

Run: ``.venv/bin/python benchmarks/round_steps.py [--size 22713986] [--sparsity 0.9] [--clients 5]``.

The steps around encryption (index sets, alignment to the union, DP noise, quantisation, error
feedback) were once outside every timed phase of the CKKS and BFV transports and showed up as
``untimed`` in the stats stage's ``phases.csv`` (about 140 s of a 580 s MedHE run in the full
profile); they are now the phases ``align``, ``noise`` and ``quantise`` of every transport.
This benchmark runs those steps through the clients' own codecs and the server's aggregator (method
``medhe_bfv``: ``union`` alignment, Gaussian shares, 8-bit quantisation) on synthetic sparse updates
(random index sets, Gaussian values; one round, every client), stops before encryption, and prints the
seconds per phase as the codecs time them (summed over clients) and the server's union.
The last two lines compare ``np.unique`` with :func:`medhe.ckks.sparse.sorted_unique` on the
merged index sets: NumPy 2.4's ``np.unique`` made index alignment the slowest step of a MedHE
round (measured 33 s of 37 s per round).
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import numpy as np

from medhe import params, rng
from medhe.ckks.sparse import sorted_unique
from medhe.fl import methods
from medhe.fl.client import make_codec, make_keys
from medhe.fl.plan import RoundPlan
from medhe.fl.server import make_aggregator
from medhe.fl.transport import Payload


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
    spec = methods.get("medhe_bfv")
    P = params.load_dict({"bfv": {"value_bits": args.bits}, "data": {"num_clients": args.clients}})
    keys = make_keys(spec, P)
    codecs = [make_codec(spec, P, keys, client=i, size=args.size, num_clients=args.clients) for i in range(args.clients)]
    server = make_aggregator(spec, P, codecs[0].setup_message(), size=args.size)
    ids = list(range(args.clients))
    plan = RoundPlan(round=1, clients=ids, weights=[1.0 / args.clients] * args.clients, clip_bound=1.0,
                     noise={"mechanism": "gaussian", "std": 1e-3, "seed": args.seed}, seed=args.seed)
    times: dict[str, float] = {}
    index_msgs = [c.begin(plan, p) for c, p in zip(codecs, payloads)]  # timed by each codec as "align"
    t = time.perf_counter()
    union_msg = server.union(index_msgs, clients=ids)
    times["server: union of the index sets"] = time.perf_counter() - t
    for c in codecs:
        c.receive_union(union_msg)
    for phase in ("align", "noise", "quantise"):
        times[f"clients: {phase} (codec timings)"] = sum(c.timings.get(phase, 0.0) for c in codecs)
    union_size = codecs[0].num_values()

    @contextmanager
    def step(name: str):
        t = time.perf_counter()
        yield
        times[name] = times.get(name, 0.0) + time.perf_counter() - t

    merged = np.concatenate([p.indices for p in payloads])
    with step("(np.unique of the merged index sets)"):
        expected = np.unique(merged)
    with step("(sorted_unique of the same, as the union uses)"):
        got = sorted_unique(merged)
    assert np.array_equal(expected, got)
    print(f"one round, {args.clients} clients, {args.size:,} parameters, s = {args.sparsity}: k = {k:,} per client, "
          f"union {union_size:,} ({union_size / args.size:.1%})")
    for name, sec in times.items():
        print(f"  {name:45s} {sec:7.2f} s")
    print(f"  {'total of the round steps':45s} {sum(v for n, v in times.items() if not n.startswith('(')):7.2f} s")


if __name__ == "__main__":
    main()
