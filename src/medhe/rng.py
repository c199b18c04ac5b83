"""Seed streams: every random draw in medhe comes from a generator derived here.

One integer seed per run; each consumer asks for its own named stream, so a new
random call in one place never reorders the draws of another (no global seeding).

>>> a = generator(42, "partition").integers(0, 1000, size=3)
>>> b = generator(42, "partition").integers(0, 1000, size=3)
>>> bool((a == b).all())
True
>>> bool((a == generator(42, "dp-noise").integers(0, 1000, size=3)).all())
False
"""

from __future__ import annotations

import hashlib

import numpy as np


def _stream_key(stream: str) -> int:
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream must be a non-empty string, got {stream!r}")
    return int.from_bytes(hashlib.sha256(stream.encode("utf-8")).digest()[:8], "little")


def seed_sequence(seed: int, stream: str, *keys: int) -> np.random.SeedSequence:
    """The SeedSequence for ``(seed, stream, *keys)``; keys are e.g. a client id and a round."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for key in keys:
        if not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(f"stream keys must be non-negative integers, got {key!r}")
    return np.random.SeedSequence([int(seed), _stream_key(stream), *map(int, keys)])


def generator(seed: int, stream: str, *keys: int) -> np.random.Generator:
    """A numpy Generator for one named stream of one seed (plus optional integer keys)."""
    return np.random.default_rng(seed_sequence(seed, stream, *keys))


def int_seed(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit integer derived from the stream, for libraries that take an int seed."""
    return int(seed_sequence(seed, stream, *keys).generate_state(2, np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, stream: str, *keys: int):
    """A ``torch.Generator`` (CPU) seeded from the stream."""
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(int_seed(seed, stream, *keys))
    return g
