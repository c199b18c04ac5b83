"""``pipeline.engine``: the same run on the in-process engine or on Flower's simulation engine.

:func:`run` is what :func:`medhe.fl.run` resolves to: with ``pipeline.engine: inprocess`` (the
default, which every committed result used) it is :func:`medhe.fl.simulate.run`; with ``flower`` it
runs the method on Flower's simulation engine (:mod:`medhe.flower.simulation`, one virtual SuperNode
per client) and returns the same :class:`~medhe.fl.simulate.RunResult`, written to the same files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medhe.params import Params


def run(P: Params, *, method: str, seed: int | None = None, out_dir: str | Path | None = None,
        progress: bool = True, **kwargs: Any):
    """Train ``method`` on the engine ``P.pipeline.engine`` names; arguments as :func:`medhe.fl.simulate.run`.

    Raises:
        ValueError: for the flower engine, on arguments it does not take (``dataset``, a target F1).
    """
    from medhe.fl import simulate

    if P.pipeline.engine == "inprocess":
        return simulate.run(P, method=method, seed=seed, out_dir=out_dir, progress=progress, **kwargs)
    unsupported = {k: v for k, v in kwargs.items() if v is not None and k != "min_rounds"}
    if unsupported:
        raise ValueError(f"pipeline.engine 'flower' does not take {sorted(unsupported)}; use the inprocess engine")
    return run_flower(P, method=method, seed=P.seed if seed is None else seed, out_dir=out_dir)


def run_flower(P: Params, *, method: str, seed: int, out_dir: str | Path | None = None):
    """One run on Flower's simulation engine, as a :class:`~medhe.fl.simulate.RunResult`."""
    from medhe.fl.simulate import write
    from medhe.flower import simulation

    with tempfile.TemporaryDirectory(prefix="medhe-flower-") as tmp:
        simulation.run(P, methods=[method], seed=seed, out_dir=tmp)
        result = load_result(Path(tmp) / method)
    if out_dir is not None:
        write(result, out_dir)
    return result


def load_result(folder: str | Path):
    """The :class:`~medhe.fl.simulate.RunResult` of a Flower run's output folder."""
    import pandas as pd

    from medhe import comm, records
    from medhe.fl.simulate import RunResult

    folder = Path(folder)
    history = [{k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
               for row in pd.read_csv(folder / "history.csv").to_dict("records")]
    ledger = comm.ByteLedger(rows=pd.read_csv(folder / "bytes.csv").to_dict("records"))
    final = folder / "final_weights.npy"
    return RunResult(history, records.read_json(folder / "run.json"), ledger,
                     final_weights=np.load(final) if final.exists() else None)
