"""Scale on Flower's simulation engine: the tabular task at growing client counts.

For each client count n, one simulation (:mod:`medhe.flower.simulation`) runs the method for
``rounds`` rounds on n virtual SuperNodes (Ray, ``num_cpus`` cores). Measured per n: the mean wall
time of a round and the server's aggregation time per round (from the ServerApp's history), the
peak resident memory of the server process and of every process of the simulation (Ray's included),
the bytes per client and round (the medhe ledger; Flower's own bytes apart), and the whole run's wall
time with Ray's start-up. Rows go to a CSV (:func:`measure`); :func:`plot` draws them.

Packed CKKS needs more carry bits per value as n grows, so ``ckks.pack_batch`` is lowered to what the
context's exact precision holds at each n (:func:`packed_batch`; recorded as ``pack_batch``).

Limit: the breast_cancer training split has 455 records, so at most 455 clients hold one record
each (the in-process engine has the same limit); n above that is refused before anything starts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from medhe.params import Params

COLUMNS = ("engine", "method", "num_clients", "rounds", "pack_batch", "time_round", "time_aggregate", "peak_rss_mb_server",
           "peak_rss_mb_all_processes", "mib_up_per_client_round", "mib_down_per_client_round",
           "flower_mib_per_client_round", "wall_s")


def measure(P: Params, *, method: str, clients: list[int], out_dir: str | Path, num_cpus: int = 2) -> pd.DataFrame:
    """One simulation per client count; writes ``out_dir/scale.csv`` and returns its rows. Each
    simulation's own files (data, keys, logs) live in a temporary folder, removed afterwards."""
    import dataclasses
    import shutil
    import tempfile

    from medhe.fl.simulate import load_dataset
    from medhe.flower import simulation

    n_train = len(load_dataset(P).y_train)
    too_many = [n for n in clients if n > n_train]
    if too_many:
        raise ValueError(f"client counts {too_many} exceed the {n_train} training records of {P.data.dataset!r} "
                         "(every client needs at least one)")
    out_dir = Path(out_dir)
    rows = []
    for n in clients:
        batch = packed_batch(P, num_clients=n)
        Pn = dataclasses.replace(P, data=dataclasses.replace(P.data, num_clients=n),
                                 ckks=dataclasses.replace(P.ckks, pack_batch=batch))
        folder = Path(tempfile.mkdtemp(prefix=f"medhe-scale-{n}-"))
        t = time.perf_counter()
        simulation.run(Pn, methods=[method], out_dir=folder, num_cpus=num_cpus, export_model=False,
                       timeout=7200)
        wall = time.perf_counter() - t
        hist = pd.read_csv(folder / method / "history.csv")
        rounds = hist[hist["round"] > 0]
        wire = pd.read_csv(folder / method / "wire.csv")
        wire = wire[wire["round"] > 0]
        flower_bytes = (wire["flower_bytes_down"] + wire["flower_bytes_up"]).sum()
        peak = json.loads((folder / "peak_rss.json").read_text())["peak_rss_mb_all_processes"]
        rows.append({"engine": "flower", "method": method, "num_clients": n, "rounds": len(rounds), "pack_batch": batch,
                     "time_round": float(rounds["time_round"].mean()),
                     "time_aggregate": float(rounds["time_aggregate"].mean()),
                     "peak_rss_mb_server": float(rounds["server_peak_rss_mb"].max()),
                     "peak_rss_mb_all_processes": float(peak),
                     "mib_up_per_client_round": float(rounds["bytes_up_per_client"].mean()) / 2**20,
                     "mib_down_per_client_round": float(rounds["bytes_down_per_client"].mean()) / 2**20,
                     "flower_mib_per_client_round": float(flower_bytes) / n / len(rounds) / 2**20,
                     "wall_s": wall})
        shutil.rmtree(folder, ignore_errors=True)
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        out_dir.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out_dir / "scale.csv", index=False)  # written after every count: a partial sweep survives
    return pd.DataFrame(rows, columns=list(COLUMNS))


def packed_batch(P: Params, *, num_clients: int) -> int:
    """``ckks.pack_batch``, lowered to the largest batch whose ``num_clients``-sum fits the context's exact
    precision (more clients need more carry bits per packed value)."""
    from medhe import ckks
    from medhe.ckks.packing import carry_bits, precision_budget_bits
    from medhe.fl.ckks_transport import ckks_params

    budget = precision_budget_bits(ckks.make_client_context(ckks_params(P.ckks)))
    return max(1, min(P.ckks.pack_batch, budget // (P.ckks.pack_bits + carry_bits(num_clients))))


def plot(csv: str | Path):
    """Round time, server aggregation time, peak memory and bytes per client against the client count."""
    import matplotlib.pyplot as plt

    df = pd.read_csv(csv)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for method, g in df.groupby("method"):
        g = g.sort_values("num_clients")
        axes[0].plot(g["num_clients"], g["time_round"], "o-", label=f"{method}: round")
        axes[0].plot(g["num_clients"], g["time_aggregate"], "s--", label=f"{method}: server aggregation")
        axes[1].plot(g["num_clients"], g["peak_rss_mb_all_processes"], "o-", label=f"{method}: all processes")
        axes[1].plot(g["num_clients"], g["peak_rss_mb_server"], "s--", label=f"{method}: ServerApp")
        axes[2].plot(g["num_clients"], g["mib_up_per_client_round"], "o-", label=f"{method}: up (ledger)")
        axes[2].plot(g["num_clients"], g["flower_mib_per_client_round"], "s--", label=f"{method}: Flower, both ways")
    for ax, ylabel in zip(axes, ("seconds per round", "peak RSS (MiB)", "MiB per client and round")):
        ax.set_xscale("log")
        ax.set_xlabel("clients (Flower simulation engine)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
