"""Benchmark medhe.bfv: bytes and time per ciphertext, and bytes per round at the paper's size.

Run: ``.venv/bin/python benchmarks/bench_bfv.py [--out results/bench/bfv.csv]``.

Prints three markdown tables and writes CSV: the per-round table to ``--out``, the parameter
table to ``<stem>_params.csv``.

Method (what each row assumes):
    * parameter table: ``--sample`` ciphertexts per client, 5 clients, random 8-bit values with
      3 carry bits (11-bit fields); bytes are ``len()`` of real serialised seeded uploads (mean)
      and of the full-size aggregate (downlink); the noise budget is the least left after the
      server's 5-way sum (measured with the clients' key); "exact" checks the decrypted sums
      against the integer sums; ms/ct = pack + encrypt + serialise per client ciphertext.
    * paper-sized round: d = 66,955,010, 5 clients, s = 0.9 (k = 6,695,501), default BFV
      parameters. Index sets follow a Bernoulli random-index model (each position kept with
      probability 1 - s; real top-k sets overlap more): ``union random`` has |union| =
      d (1 - s^5) (the union mask drawn as Bernoulli(1 - s^5)), ``union = k`` is the best case
      (identical index sets), ``dense`` encrypts all d positions. ``bytes_per_value_up`` is per
      *kept* value (k), index sets included. Index-set bytes are
      ``len(encode_index_set(...))`` of drawn sets; ciphertext bytes are counts x measured
      mean sizes; times are counts x measured per-ciphertext times (5 clients encrypt in
      sequence here; in a deployment they run in parallel).
    * information floor (uplink, per client): the k kept values of a Gaussian update (its top
      10 % by magnitude) quantised to 8 bits against their largest magnitude, plus the client's
      index set, each compressed with the better of zlib-9 and lzma; an estimate of the least any
      scheme sends without DP noise (noisy values compress less). Downlink floor: the union
      index set compressed plus |union| 11-bit sums at the compressed rate of a 1 M sample.
    * the paper's point: the smallest s with bytes per round (5 uploads + 5 downloads, and the
      uplink alone) <= the paper's claimed MedHE bytes per round (read from ``--claims``, claim
      ``comm-medhe-mb``, in its unit), from measured bytes per ciphertext and index-set bytes measured
      at d / 16 and scaled by 16, on a grid of 1 - s in [1e-4, 0.1] (interpolated).
"""

from __future__ import annotations

import argparse
import lzma
import math
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.stats import norm

from medhe import bfv
from medhe.ckks.sparse import encode_index_set
from medhe.rng import generator

import bench_tables  # noqa: E402  (beside this script)

D_PARAMS = 66_955_010
SPARSITY = 0.9
NUM_CLIENTS = 5
TARGET_BYTES = float("nan")  # set in main() from the claims file: the paper's number is not typed here
MB = 1e6
PARAM_SETS = [
    dict(poly_modulus_degree=4096, coeff_mod_bit_sizes=(36, 36, 37), plain_modulus_bits=59),  # tracker
    dict(poly_modulus_degree=4096, coeff_mod_bit_sizes=(36, 36, 37), plain_modulus_bits=55),
    dict(poly_modulus_degree=4096, coeff_mod_bit_sizes=(32, 32, 45), plain_modulus_bits=55),  # default
    dict(poly_modulus_degree=4096, coeff_mod_bit_sizes=(24, 24, 24, 37), plain_modulus_bits=55),
    dict(poly_modulus_degree=4096, coeff_mod_bit_sizes=(60,), plain_modulus_bits=44),
    dict(poly_modulus_degree=4096, coeff_mod_bit_sizes=(30, 30, 49), plain_modulus_bits=55),  # no budget
    dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=(32, 32, 45), plain_modulus_bits=55),
    dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=(40, 40, 60), plain_modulus_bits=55),
    dict(poly_modulus_degree=16384, coeff_mod_bit_sizes=(32, 32, 60), plain_modulus_bits=55),
]


def _measure(p: bfv.BFVParams, *, sample: int, seed: int) -> dict:
    layout = bfv.FieldLayout(value_bits=p.value_bits, num_clients=NUM_CLIENTS, plain_modulus_bits=p.plain_modulus_bits)
    N = p.poly_modulus_degree
    client, server = bfv.BFVClient(p), bfv.BFVServer(bfv.parameters_bytes(p))
    rng = generator(seed, "bench-bfv", N, p.plain_modulus_bits)
    per = layout.values_per_ciphertext(N)
    qs = [rng.integers(-layout.levels, layout.levels + 1, per * sample) for _ in range(NUM_CLIENTS)]
    t0 = time.perf_counter()
    ups = [client.encrypt(bfv.pack_fields(q, layout, poly_modulus_degree=N)) for q in qs]
    t1 = time.perf_counter()
    agg = server.aggregate(ups)
    t2 = time.perf_counter()
    row = {"N": N, "moduli": "/".join(map(str, p.coeff_mod_bit_sizes)), "t_bits": p.plain_modulus_bits,
           "field_bits": layout.field_bits, "fields": layout.fields, "values_ct": per,
           "bytes_ct": float(np.mean([len(b) for u in ups for b in u])),
           "bytes_full": float(np.mean([len(b) for b in agg]))}
    row["bytes_value"] = row["bytes_ct"] / per
    row["enc_ms"] = (t1 - t0) / (NUM_CLIENTS * sample) * 1e3
    row["agg_ms"] = (t2 - t1) / sample * 1e3
    try:
        t3 = time.perf_counter()
        rows, least = client.decrypt(agg)
        row["dec_ms"] = (time.perf_counter() - t3) / sample * 1e3
        got = bfv.unpack_fields(rows, layout, size=per * sample, num_summed=NUM_CLIENTS)
        row["budget_left"], row["exact"] = least, bool(np.array_equal(got, sum(qs)))
    except bfv.NoiseBudgetError:
        row["budget_left"], row["exact"], row["dec_ms"] = 0, "refused (no budget)", float("nan")
    return row


def _best_compressed(data: bytes) -> int:
    return min(len(zlib.compress(data, 9)), len(lzma.compress(data, preset=6)))


def _topk_gaussian_q(rng: np.random.Generator, k: int, s: float) -> np.ndarray:
    """8-bit quantised top-(1-s) values of a standard Gaussian (|x| >= the s-quantile of |x|)."""
    u = rng.uniform(s, 1.0, k)  # |x| quantile in the kept tail
    mag = norm.ppf((1.0 + u) / 2.0)
    x = mag * rng.choice([-1.0, 1.0], k)
    return np.rint(x / np.abs(x).max() * 127).astype(np.int8)


def _index_bytes(rng: np.random.Generator, *, d: int, density: float) -> tuple[int, int]:
    """(encoded bytes, best-compressed encoded bytes) of a Bernoulli(density) index set of [0, d)."""
    idx = np.flatnonzero(rng.random(d) < density)
    enc = encode_index_set(idx, length=d)
    return len(enc), _best_compressed(enc)


def _round_rows(m: dict, *, seed: int) -> list[dict]:
    d, s, n = D_PARAMS, SPARSITY, NUM_CLIENTS
    k = math.floor((1 - s) * d + 0.5)
    u = round(d * (1 - s**n))
    rng = generator(seed, "bench-bfv-round")
    idx_client, idx_client_c = _index_bytes(rng, d=d, density=1 - s)
    idx_union, idx_union_c = _index_bytes(rng, d=d, density=1 - s**n)
    per = m["values_ct"]
    t_ct = (m["enc_ms"] + m["dec_ms"]) / 1e3  # per client ciphertext: encrypt + (its share of) decrypt
    rows = []
    for label, values, up_idx, down_idx in [("union random", u, idx_client, idx_union),
                                            ("union = k (best)", k, idx_client, idx_client),
                                            ("dense", d, 0, 0)]:
        cts = math.ceil(values / per)
        up = cts * m["bytes_ct"] + up_idx
        down = cts * m["bytes_full"] + down_idx
        secs = cts * (n * m["enc_ms"] + m["agg_ms"] + m["dec_ms"]) / 1e3
        rows.append({"row": f"BFV {label}", "values_per_client": values, "cts_per_client": cts,
                     "up_MB_client": up / MB, "down_MB_client": down / MB, "round_MB": n * (up + down) / MB,
                     "up_round_MB": n * up / MB, "bytes_per_value_up": up / k, "values_per_s": values / (cts * t_ct),
                     "round_s_1core": secs})
    q = _topk_gaussian_q(rng, k, s)
    vals_c = _best_compressed(q.tobytes())
    sums = sum(_topk_gaussian_q(rng, 1_000_000, s).astype(np.int16) for _ in range(n))
    sum_rate = _best_compressed(sums.tobytes()) / 1e6
    up_f = vals_c + idx_client_c
    for label, values, down_f in [("union random", u, idx_union_c + u * sum_rate),
                                  ("union = k", k, idx_client_c + k * sum_rate)]:
        rows.append({"row": f"floor, {label} (no DP noise)", "values_per_client": values, "cts_per_client": 0,
                     "up_MB_client": up_f / MB, "down_MB_client": down_f / MB, "round_MB": n * (up_f + down_f) / MB,
                     "up_round_MB": n * up_f / MB, "bytes_per_value_up": up_f / k, "values_per_s": float("nan"),
                     "round_s_1core": float("nan")})
    return rows


def _index_grid(*, seed: int, scale: int = 16) -> list[tuple[float, float, float]]:
    """(s, client index-set bytes, random-union index-set bytes) on a grid of s, measured at d / scale."""
    rng = generator(seed, "bench-bfv-s")
    d = D_PARAMS // scale
    out = []
    for keep in np.geomspace(1e-4, 0.1, 36):
        s = 1.0 - float(keep)
        out.append((s, _index_bytes(rng, d=d, density=keep)[0] * scale,
                    _index_bytes(rng, d=d, density=1 - s**NUM_CLIENTS)[0] * scale))
    return out


def _smallest_s(m: dict, grid: list[tuple[float, float, float]], *, union: str, uplink_only: bool) -> float:
    """Smallest s on the grid whose round bytes are <= TARGET_BYTES (linear interpolation between points)."""
    def total(s: float, idx_up: float, idx_union: float) -> float:
        k = (1 - s) * D_PARAMS
        u = D_PARAMS * (1 - s**NUM_CLIENTS) if union == "random" else k
        idx_down = idx_union if union == "random" else idx_up
        cts = math.ceil(u / m["values_ct"])
        up = cts * m["bytes_ct"] + idx_up
        return NUM_CLIENTS * up if uplink_only else NUM_CLIENTS * (up + cts * m["bytes_full"] + idx_down)

    pts = sorted((s, total(s, a, b)) for s, a, b in grid)  # s ascending, bytes descending
    for (s0, b0), (s1, b1) in zip(pts, pts[1:]):
        if b0 > TARGET_BYTES >= b1:
            return s0 + (s1 - s0) * (b0 - TARGET_BYTES) / (b0 - b1)
    return pts[0][0] if pts[0][1] <= TARGET_BYTES else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/bench/bfv.csv"))
    ap.add_argument("--sample", type=int, default=8, help="ciphertexts per client per parameter set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--claims", type=Path, default=Path("claims/paper.yaml"),
                    help="claims file: the target is claim comm-medhe-mb (per round, 5 clients, in its unit)")
    args = ap.parse_args()
    global TARGET_BYTES
    from medhe.claims import claimed_bytes, load_claims

    claimed = next(c for c in load_claims(args.claims) if c["id"] == "comm-medhe-mb")["claimed"]
    TARGET_BYTES = claimed_bytes(claimed["per_round"], claimed["unit"])

    prows = []
    for ps in PARAM_SETS:
        prows.append(_measure(bfv.BFVParams(**ps), sample=args.sample, seed=args.seed))
    pcols = ["N", "moduli", "t_bits", "field_bits", "fields", "values_ct", "bytes_ct", "bytes_full", "bytes_value",
             "budget_left", "exact", "enc_ms", "agg_ms", "dec_ms"]
    print("## BFV parameter sets (5 clients, 8-bit values, 11-bit fields)\n")
    print(bench_tables.markdown(prows, pcols))
    bench_tables.write_csv(args.out.with_name(args.out.stem + "_params.csv"), prows, pcols)

    default = next(r for r in prows if r["moduli"] == "32/32/45" and r["N"] == 4096)
    rrows = _round_rows(default, seed=args.seed)
    rcols = ["row", "values_per_client", "cts_per_client", "up_MB_client", "down_MB_client", "up_round_MB",
             "round_MB", "bytes_per_value_up", "values_per_s", "round_s_1core"]
    print(f"\n## Paper-sized round (d = {D_PARAMS:,}, s = {SPARSITY}, {NUM_CLIENTS} clients, "
          f"N=4096 [32, 32, 45] t=2^55)\n")
    print(bench_tables.markdown(rrows, rcols))
    bench_tables.write_csv(args.out, rrows, rcols)

    srows = []
    grid = _index_grid(seed=args.seed)
    for name, m in [("default 32/32/45", default), ("tracker 36/36/37", prows[0])]:
        for union in ("random", "k"):
            srows.append({"params": name, "union": union,
                          "s_total_target": _smallest_s(m, grid, union=union, uplink_only=False),
                          "s_uplink_target": _smallest_s(m, grid, union=union, uplink_only=True)})
    for r in srows:
        r["target_bytes"] = TARGET_BYTES
    print(f"\n## Smallest sparsity s that brings BFV to the paper's {TARGET_BYTES:,.0f} B per round "
          f"({NUM_CLIENTS} clients)\n")
    print(bench_tables.markdown(srows, ["params", "union", "s_total_target", "s_uplink_target"]))
    bench_tables.write_csv(args.out.with_name(args.out.stem + "_target.csv"), srows,
               ["params", "union", "target_bytes", "s_total_target", "s_uplink_target"])


if __name__ == "__main__":
    main()
