"""How one real clipped top-k update quantises at 8 bits, for packing bounds C*w*f/sqrt(k).

Run: ``.venv/bin/python benchmarks/quant_range.py [--profile profiles/full.yaml] [--bits 8]``.

Trains client 0 of the profile's partition for one round (seed 42), keeps the top (1 - s)
fraction of its update, clips it to the clip norm C, scales by the aggregation weight w = 1/n,
and prints, per range factor f (None = the worst-case bound C*w that the pipeline uses by
default), the fraction of kept values that quantise to zero, that saturate, and the relative L2
error of the quantised update. The bound C*w*f/sqrt(k) uses public numbers only.
"""

from __future__ import annotations

import argparse

import numpy as np

from medhe import ckks, model, params, privacy, sparsify
from medhe.fl import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="profiles/full.yaml")
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    P = params.load(args.profile)
    ds, parts, bundle = simulate.load_inputs(P, seed=args.seed)
    idx = parts[0]
    w0 = model.get_flat(bundle.module).copy()
    model.train_local(bundle.module, bundle.encode([ds.x_train[i] for i in idx]), ds.y_train[idx],
                      epochs=P.train.local_epochs, batch_size=P.train.batch_size, lr=P.train.lr,
                      seed=args.seed, client=0, round_=1)
    delta = model.get_flat(bundle.module) - w0
    k = sparsify.num_kept(delta.size, sparsity=P.sparsify.sparsity)
    top = np.sort(np.abs(delta))[-k:]
    kept, _ = privacy.clip_l2(top, max_norm=P.dp.clip_norm)
    weight = 1.0 / P.data.num_clients
    x = weight * kept
    rms = weight * P.dp.clip_norm / np.sqrt(k)
    print(f"{P.model.name}: d = {delta.size:,}, update norm {np.linalg.norm(delta):.3f}, k = {k:,}, "
          f"clipped to {np.linalg.norm(kept):.3f}; |x| / (C w / sqrt(k)) quantiles: "
          + ", ".join(f"{q}: {np.quantile(x / rms, q):.3f}" for q in (0.0, 0.5, 0.99, 1.0)))
    print(f"\n| f | zero | saturated | relative L2 error ({args.bits}-bit) |\n|---|---|---|---|")
    for f in (None, 1, 2, 4, 8, 16, 32):
        bound = weight * P.dp.clip_norm * (1.0 if f is None else f / np.sqrt(k))
        q = ckks.quantise(x, bits=args.bits, bound=bound)  # the packing's own quantiser
        err = np.linalg.norm(x - ckks.dequantise(q, bits=args.bits, bound=bound)) / np.linalg.norm(x)
        print(f"| {f} | {np.mean(q == 0):.4f} | {np.mean(np.abs(x) > bound):.4f} | {err:.4f} |")


if __name__ == "__main__":
    main()
