"""Count CKKS decryption failures with random top-k index patterns (the paper's claim that they cause some).

Run: ``python benchmarks/bench_ckks_topk.py --params params.yaml --out results/<profile>/bench/ckks_topk.csv``.

Method: each trial, ``clients`` clients each draw a random index set of k = (1 - s) d coordinates
(uniform, independent: no EMA threshold, no error feedback) and values N(0, 1) clipped to L2 norm
``dp.clip_norm``; they go through medhe's own :class:`medhe.fl.ckks_transport.CKKSTransport` with the
profile's CKKS parameters (``union`` alignment, equal weights, no DP noise), once packed
(``ckks.pack_bits``, ``ckks.pack_batch``) and once unpacked. The decrypted mean is compared with a
reference computed here without encryption:

* packed: the weighted values are quantised against the transport's public bound (as every client
  does) and summed as integers; the decryption fails if any dequantised value differs;
* unpacked: the plaintext weighted sum; the decryption fails if any value is off by more than
  ``TOL`` (1e-6; CKKS at scale 2^40 errs by about 1e-9 here).

A trial whose round raises counts as a failure too. Writes one row per path: trials, decryptions
(one aggregate per trial: every client decrypts the same broadcast), the ciphertexts and union
values they hold, failures, largest error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medhe import comm, params
from medhe.ckks.packing import dequantise, quantise
from medhe.fl.ckks_transport import CKKSTransport
from medhe.fl.transport import Payload
from medhe.rng import generator

import bench_tables  # noqa: E402  (beside this script)

TOL = 1e-6
COLS = ["path", "trials", "clients", "size", "sparsity", "decryptions", "ciphertexts", "values_checked", "failed",
        "max_abs_error", "tolerance"]


def _payloads(rng: np.random.Generator, *, clients: int, size: int, k: int, clip: float) -> list[Payload]:
    out = []
    for _ in range(clients):
        idx = np.sort(rng.choice(size, size=k, replace=False)).astype(np.int64)
        v = rng.standard_normal(k)
        v *= min(1.0, clip / float(np.linalg.norm(v)))
        out.append(Payload(values=v.astype(np.float32), indices=idx))
    return out


def _reference(payloads: list[Payload], weights: list[float], *, size: int, packed: bool, transport: CKKSTransport,
               union_size: int) -> np.ndarray:
    """The aggregate the clients should decrypt, computed without encryption."""
    ref = np.zeros(size, dtype=np.float64)
    if not packed:
        for p, w in zip(payloads, weights):
            ref[p.indices] += w * p.values.astype(np.float64)
        return ref
    spec = transport.packing
    bound = transport.bound(weights, union_size)
    q = np.zeros(size, dtype=np.int64)
    for p, w in zip(payloads, weights):
        q[p.indices] += quantise(w * p.values.astype(np.float64), bits=spec.bits, bound=bound)
    return dequantise(q, bits=spec.bits, bound=bound)


def count_failures(P: params.Params, *, trials: int, clients: int, size: int, sparsity: float, packed: bool,
                   seed: int) -> dict:
    """Run ``trials`` random-pattern rounds through the CKKS transport; count failed decryptions."""
    k = max(1, int(round((1 - sparsity) * size)))
    transport = CKKSTransport(P.ckks, size=size, packing=packed, alignment="union", clip_norm=P.dp.clip_norm,
                              num_clients=clients, range_factor=P.quant.range_factor, noise_sigmas=P.quant.noise_sigmas)
    weights = [1.0 / clients] * clients
    failed, worst, cts, values = 0, 0.0, 0, 0
    for t in range(trials):
        rng = generator(seed, "bench-ckks-topk", int(packed), t)
        payloads = _payloads(rng, clients=clients, size=size, k=k, clip=P.dp.clip_norm)
        union_size = np.unique(np.concatenate([p.indices for p in payloads])).size
        try:
            res = transport.round(payloads, weights=weights, noise=None, ledger=comm.ByteLedger(), round_=t + 1)
        except Exception:  # noqa: BLE001 - a round that raises is a failed decryption, counted
            failed += 1
            continue
        cts += int(res.info["ciphertexts_per_client"])
        values += union_size
        ref = _reference(payloads, weights, size=size, packed=packed, transport=transport, union_size=union_size)
        err = float(np.max(np.abs(res.mean_update.astype(np.float64) - ref)))
        worst = max(worst, err)
        tol = TOL
        if packed:  # exact integers: any error beyond float32 rounding of the dequantised value is a wrong integer
            tol = 1e-6 * max(1.0, float(np.max(np.abs(ref))))
        failed += int(err > tol)
    return {"path": "packed" if packed else "unpacked", "trials": trials, "clients": clients, "size": size,
            "sparsity": sparsity, "decryptions": trials, "ciphertexts": cts, "values_checked": values, "failed": failed, "max_abs_error": worst, "tolerance": TOL}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path, default=Path("results/bench/ckks_topk.csv"))
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--size", type=int, default=100_000, help="coordinates per update")
    args = ap.parse_args()
    P = params.load(args.params)
    rows = [count_failures(P, trials=args.trials, clients=P.data.num_clients, size=args.size,
                           sparsity=P.sparsify.sparsity, packed=packed, seed=P.seed) for packed in (True, False)]
    print(bench_tables.markdown(rows, COLS))
    bench_tables.write_csv(args.out, rows, COLS)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
