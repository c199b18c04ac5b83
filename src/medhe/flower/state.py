"""A client's state between messages, in Flower records (``context.state``).

Deployment starts a fresh ClientApp process for every message, so nothing may live in Python
objects from one message to the next: the model weights, the error-feedback residual and EMA
threshold of the top-k sparsifier, the round the client is in, and what it must keep between a
round's steps (its sparse payload, the union, the quantisation bound) are records of
``context.state``, which the SuperNode keeps. Arrays travel as raw little-endian bytes.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

RAW = "raw"  # Array.stype of raw bytes (no numpy header)


def raw_array(data: bytes) -> Array:
    """``data`` as a Flower Array of bytes (Flower splits arrays larger than its chunk size)."""
    return Array(dtype="bytes", shape=(len(data),), stype=RAW, data=bytes(data))


def blobs_record(blobs: list[bytes]) -> ArrayRecord:
    """A list of byte strings (e.g. ciphertexts) as one ArrayRecord, in order."""
    return ArrayRecord({f"{i:06d}": raw_array(b) for i, b in enumerate(blobs)})


def record_blobs(record: ArrayRecord) -> list[bytes]:
    """The byte strings of :func:`blobs_record`, in order."""
    return [record[k].data for k in sorted(record.keys())]


def vector_array(x: np.ndarray) -> Array:
    """A 1-D numeric vector as raw bytes, with its dtype."""
    x = np.ascontiguousarray(x)
    return Array(dtype=x.dtype.str, shape=(int(x.size),), stype=RAW, data=x.tobytes())


def array_vector(a: Array) -> np.ndarray:
    return np.frombuffer(a.data, dtype=np.dtype(a.dtype)).copy()


def put_vectors(state: RecordDict, name: str, **vectors: np.ndarray | None) -> None:
    """Store named vectors (None entries are left out) as the ArrayRecord ``name``."""
    state[name] = ArrayRecord({k: vector_array(v) for k, v in vectors.items() if v is not None})


def get_vectors(state: RecordDict, name: str) -> dict[str, np.ndarray]:
    if name not in state:
        return {}
    rec = state[name]
    return {k: array_vector(rec[k]) for k in rec.keys()}


# ---------------------------------------------------------------------------- sparsifier


def save_sparsifier(state: RecordDict, sparsifier) -> None:
    """The top-k sparsifier's state: residual, EMA threshold, per-round density and cap history."""
    if sparsifier is None:
        return
    residual = sparsifier._residual  # noqa: SLF001 - its whole state is saved and restored here
    put_vectors(state, "sparsifier.arrays", residual=None if residual is None else np.asarray(residual))
    cfg = {"density-history": [float(d) for d in sparsifier.density_history],
           "capped-history": [bool(c) for c in sparsifier.capped_history],
           "dtype": np.dtype(sparsifier._dtype).str}  # noqa: SLF001
    if sparsifier.threshold is not None:
        cfg["threshold"] = float(sparsifier.threshold)
    if sparsifier.exact_threshold is not None:
        cfg["exact-threshold"] = float(sparsifier.exact_threshold)
    if sparsifier.last_sent_nnz is not None:
        cfg["last-sent-nnz"] = int(sparsifier.last_sent_nnz)
    state["sparsifier.config"] = ConfigRecord(cfg)


def load_sparsifier(state: RecordDict, sparsifier) -> None:
    """Restore what :func:`save_sparsifier` stored into a freshly built sparsifier (no-op if nothing)."""
    if sparsifier is None or "sparsifier.config" not in state:
        return
    cfg = state["sparsifier.config"]
    arrays = get_vectors(state, "sparsifier.arrays")
    sparsifier._residual = arrays.get("residual")  # noqa: SLF001
    sparsifier._dtype = np.dtype(cfg["dtype"])  # noqa: SLF001
    sparsifier.density_history = list(cfg["density-history"])
    sparsifier.capped_history = list(cfg["capped-history"])
    sparsifier.threshold = cfg.get("threshold")
    sparsifier.exact_threshold = cfg.get("exact-threshold")
    sparsifier.last_sent_nnz = cfg.get("last-sent-nnz")
