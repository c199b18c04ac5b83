"""Benchmark medhe.ckks: throughput, ciphertext bytes, and bytes per round at the paper's size.

Run: ``.venv/bin/python benchmarks/bench_ckks.py [--out results/bench/ckks.csv]``.

Prints two markdown tables and writes them as CSV: the per-round table to ``--out`` and the
per-parameter-set table beside it (``<stem>_params.csv``).

Method:
    * bytes per ciphertext are ``len()`` of real serialised ciphertexts (mean of the sample).
      The size does not depend on the values; with primes below 60 bits SEAL's zstd makes it
      vary by a few hundred bytes between encryptions (random ciphertext), so the mean is used.
    * throughput: ``sample`` full chunks encrypted + serialised by ``medhe.ckks.encrypt_vector``
      and by a plain TenSEAL loop (``ts.ckks_vector(ctx, chunk).serialize()``), interleaved,
      best of ``reps``; paper-sized times are the per-ciphertext time x number of ciphertexts.
    * paper-sized update: d = 66,955,010, k = 10 % = 6,695,501 kept values, 5 clients, uplink.
      Option (a) union: five index sets of size k drawn uniformly at random (a random-index
      model; real top-k sets overlap more, so the union is an upper-end estimate), their union
      measured; each client uploads its encoded index set plus |union| slots of ciphertext; the
      union broadcast (downlink) is reported separately. Option (b) dense: d slots per client.
    * packing at 8 and 4 bits: B = min(measured max exact B, the packer's safe budget) for 5
      clients. The 4-bit row is what the frontier's 4-bit CKKS training points would send with
      that B; the training runs keep ``ckks.pack_batch`` (the 8-bit B), and since packed sums
      decrypt exactly at either B, the aggregate and so the model do not depend on B.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import tenseal as ts

from medhe import ckks
from medhe.rng import generator

import bench_tables  # noqa: E402  (beside this script)

D_PARAMS = 66_955_010
SPARSITY = 0.9
NUM_CLIENTS = 5
PARAM_SETS = [
    dict(poly_modulus_degree=4096, coeff_mod_bit_sizes=(60, 49), scale_bits=40),
    dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 40, 60), scale_bits=40),
    dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 60), scale_bits=40),
    dict(poly_modulus_degree=16384, coeff_mod_bit_sizes=(60, 60, 60, 60), scale_bits=40),
]
MB = 1e6
MIB = 2**20


def _label(p: dict) -> str:
    return f"N={p['poly_modulus_degree']} {list(p['coeff_mod_bit_sizes'])} 2^{p['scale_bits']}"


def _time_encrypt(ctx: ts.Context, *, sample: int, reps: int, seed: int) -> dict[str, float]:
    slots = ckks.slot_count(ctx)
    x = generator(seed, "bench-ckks").uniform(-1, 1, slots * sample)
    wrapper, raw, sizes = math.inf, math.inf, []
    for _ in range(reps):
        t0 = time.perf_counter()
        blobs = ckks.encrypt_vector(ctx, x)
        t1 = time.perf_counter()
        raw_blobs = [ts.ckks_vector(ctx, x[i : i + slots]).serialize() for i in range(0, x.size, slots)]
        t2 = time.perf_counter()
        wrapper, raw = min(wrapper, t1 - t0), min(raw, t2 - t1)
        sizes += [len(b) for b in blobs] + [len(b) for b in raw_blobs]
    return {"s_per_ct": wrapper / sample, "raw_s_per_ct": raw / sample, "bytes_ct": float(np.mean(sizes)),
            "bytes_min": min(sizes), "bytes_max": max(sizes)}


def _random_union(seed: int, *, d: int, k: int, n: int) -> tuple[int, int, int]:
    """|union| of n uniform random k-subsets of [0, d), one client's and the union's encoded size."""
    rng = generator(seed, "bench-ckks-union")
    mask = np.zeros(d, dtype=bool)
    client_bytes = 0
    for c in range(n):
        idx = rng.choice(d, k, replace=False)
        if c == 0:
            client_bytes = len(ckks.encode_index_set(idx, length=d))
        mask[idx] = True
    union = np.flatnonzero(mask)
    return int(union.size), client_bytes, len(ckks.encode_index_set(union, length=d))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/bench/ckks.csv"))
    ap.add_argument("--sample", type=int, default=16, help="chunks timed per parameter set")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.perf_counter()

    k = round(D_PARAMS * (1 - SPARSITY))
    union, idx_client_bytes, idx_union_bytes = _random_union(args.seed, d=D_PARAMS, k=k, n=NUM_CLIENTS)
    fedavg = NUM_CLIENTS * len(np.zeros(D_PARAMS, np.float32).tobytes())
    topk_i32 = NUM_CLIENTS * (len(np.zeros(k, np.float32).tobytes()) + len(np.zeros(k, np.int32).tobytes()))
    topk_enc = NUM_CLIENTS * (len(np.zeros(k, np.float32).tobytes()) + idx_client_bytes)
    round_rows: list[dict] = [
        dict(params="plaintext", packing="fp32", alignment="dense FedAvg", values_per_client=D_PARAMS,
             round_bytes=fedavg),
        dict(params="plaintext", packing="fp32", alignment="top-k, int32 indices", values_per_client=k,
             round_bytes=topk_i32),
        dict(params="plaintext", packing="fp32", alignment="top-k, encoded index set", values_per_client=k,
             round_bytes=topk_enc),
    ]

    param_rows: list[dict] = []
    for p in PARAM_SETS:
        label = _label(p)
        ctx = ckks.make_client_context(ckks.CkksParams(**p))
        slots = ckks.slot_count(ctx)
        t = _time_encrypt(ctx, sample=args.sample, reps=args.reps, seed=args.seed)
        rng = generator(args.seed, "bench-ckks-batch")
        exact = {b: ckks.max_exact_batch(ctx, bits=b, num_clients=NUM_CLIENTS, rng=rng) for b in (4, 8, 12, 16)}
        safe = {b: ckks.precision_budget_bits(ctx) // (b + ckks.carry_bits(NUM_CLIENTS)) for b in (4, 8)}
        sizes = ckks.context_sizes(ctx)
        param_rows.append(dict(
            params=label, slots=slots, bytes_per_ct=t["bytes_ct"], bytes_ct_min=t["bytes_min"],
            bytes_ct_max=t["bytes_max"], raw_ct_bytes=ckks.raw_ciphertext_bytes(ctx),
            bytes_per_value=t["bytes_ct"] / slots, vs_fp32=t["bytes_ct"] / slots / 4,
            values_per_s=slots / t["s_per_ct"], raw_values_per_s=slots / t["raw_s_per_ct"],
            wrapper_over_raw=t["s_per_ct"] / t["raw_s_per_ct"],
            exact_B_4=exact[4], exact_B_8=exact[8], exact_B_12=exact[12], exact_B_16=exact[16],
            safe_B_4=safe[4], safe_B_8=safe[8], server_ctx_bytes=sizes["params_only"], public_key_ctx_bytes=sizes.get("public_key", ""),
        ))
        b4, b8 = min(exact[4], safe[4]), min(exact[8], safe[8])
        for packing, batch in (("1 value/slot", 1), (f"8-bit packed B={b8}", b8), (f"4-bit packed B={b4}", b4)):
            if batch < 1:
                continue
            for alignment, values, extra in (("(a) union index set", union, idx_client_bytes),
                                             ("(b) dense", D_PARAMS, 0)):
                cts = math.ceil(math.ceil(values / batch) / slots)
                up = NUM_CLIENTS * (cts * t["bytes_ct"] + extra)
                round_rows.append(dict(
                    params=label, packing=packing, alignment=alignment, values_per_client=values,
                    ct_per_client=cts, round_bytes=up,
                    downlink_index_bytes=NUM_CLIENTS * idx_union_bytes if extra else 0,
                    encrypt_s_per_client=cts * t["s_per_ct"],
                ))
    for r in round_rows:
        r["round_MB"] = r["round_bytes"] / MB
        r["round_MiB"] = r["round_bytes"] / MIB
        r["vs_fedavg_pct"] = 100 * r["round_bytes"] / fedavg

    pcols = ["params", "slots", "bytes_per_ct", "bytes_ct_min", "bytes_ct_max", "raw_ct_bytes", "bytes_per_value",
             "vs_fp32", "values_per_s", "raw_values_per_s", "wrapper_over_raw", "exact_B_4", "exact_B_8",
             "exact_B_12", "exact_B_16", "safe_B_4", "safe_B_8", "server_ctx_bytes", "public_key_ctx_bytes"]
    rcols = ["params", "packing", "alignment", "values_per_client", "ct_per_client", "round_MB", "round_MiB",
             "vs_fedavg_pct", "downlink_index_bytes", "encrypt_s_per_client"]
    print(f"## Parameter sets (all accepted at 128-bit; 5 clients for exact B)\n\n{bench_tables.markdown(param_rows, pcols)}\n")
    print(f"## Uplink bytes per round, d={D_PARAMS:,}, k={k:,}, {NUM_CLIENTS} clients "
          f"(random-index union |U|={union:,} = {union / D_PARAMS:.3f} d; index set {idx_client_bytes:,} B/client, "
          f"union {idx_union_bytes:,} B)\n\n{bench_tables.markdown(round_rows, rcols)}\n")
    bench_tables.write_csv(args.out, round_rows, rcols + ["round_bytes"])
    bench_tables.write_csv(args.out.with_name(args.out.stem + "_params.csv"), param_rows, pcols)
    print(f"wrote {args.out} and {args.out.with_name(args.out.stem + '_params.csv')} "
          f"in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
