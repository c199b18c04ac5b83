"""A client's state between messages, in Flower records (``context.state``).

Deployment starts a fresh ClientApp process for every message, so nothing may live in Python
objects from one message to the next: the model weights, the error-feedback residual and EMA
threshold of the top-k sparsifier (:meth:`medhe.fl.client.Client.state_dict`), the round the client
is in, and what it must keep between a round's steps (:meth:`medhe.fl.client.ClientCodec.round_state`)
are records of ``context.state``, which the SuperNode keeps. Arrays travel as raw little-endian bytes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

RAW = "raw"  # Array.stype of raw bytes (no numpy header)
ARRAY_KEY = "__array__"  # placeholder of an array in a stored tree


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


# ---------------------------------------------------------------------------- state trees


def put_tree(state: RecordDict, name: str, tree: dict[str, Any]) -> None:
    """Store a nested dict of numpy arrays and JSON values (e.g. :meth:`medhe.fl.client.Client.state_dict`,
    :meth:`medhe.fl.client.ClientCodec.round_state`) as two records: ``<name>.arrays`` (every array, raw
    bytes) and ``<name>.json`` (the rest, with a placeholder per array)."""
    arrays: dict[str, np.ndarray] = {}

    def strip(x):
        if isinstance(x, np.ndarray):
            key = f"a{len(arrays):05d}"
            arrays[key] = x
            return {ARRAY_KEY: key, "shape": list(x.shape)}
        if isinstance(x, dict):
            return {str(k): strip(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [strip(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        return x

    skeleton = strip(tree)
    state[f"{name}.arrays"] = ArrayRecord({k: vector_array(v.reshape(-1)) for k, v in arrays.items()})
    state[f"{name}.json"] = ConfigRecord({"tree": json.dumps(skeleton)})


def get_tree(state: RecordDict, name: str) -> dict[str, Any] | None:
    """What :func:`put_tree` stored under ``name`` (None if nothing is)."""
    if f"{name}.json" not in state:
        return None
    arrays = state[f"{name}.arrays"]

    def fill(x):
        if isinstance(x, dict):
            if ARRAY_KEY in x:
                return array_vector(arrays[x[ARRAY_KEY]]).reshape(x["shape"])
            return {k: fill(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fill(v) for v in x]
        return x

    return fill(json.loads(state[f"{name}.json"]["tree"]))


def drop(state: RecordDict, *names: str) -> None:
    """Remove the records ``names`` (and the two records of a tree of that name), where present."""
    for name in names:
        for key in (name, f"{name}.arrays", f"{name}.json"):
            if key in state:
                del state[key]
