"""The server role: bytes in, bytes out, from the public setup message only.

The aggregator never holds a key: under CKKS a TenSEAL context loaded from the parameters-only
bytes the clients sent at setup (:func:`medhe.ckks.load_server_context` refuses one with a secret
key); under BFV a SEAL context and an Evaluator built from the encryption parameters
(:class:`medhe.bfv.BFVServer`); under plaintext nothing. It can add ciphertexts and nothing else.

Per round (see :mod:`medhe.fl.client` for the client side):

* ``union(index_msgs) -> bytes | None``: under ``union`` alignment the union of the clients' index
  sets, broadcast to every client (None under other alignments; under plaintext ``own`` the server
  keeps the sets for :meth:`~Aggregator.aggregate`);
* ``aggregate(per_client) -> list[bytes]``: the sum of one block of every client's value messages,
  broadcast to every client;
* :class:`ClipServer`: the adaptive clip bound (norms or bits in, the bound out).

Faults: a message that does not deserialise, or a ciphertext under other parameters, raises
:class:`ClientMessageError` naming the client; nothing is added from a round with a bad message.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medhe import comm


class ClientMessageError(ValueError):
    """A client's message the server cannot use (does not deserialise, other parameters, wrong shape)."""

    def __init__(self, client: int, detail: str) -> None:
        super().__init__(f"client {client}: {detail}; nothing from this round was added")
        self.client = client


def _ids(clients: Sequence[int] | None, n: int) -> list[int]:
    ids = list(range(n)) if clients is None else [int(c) for c in clients]
    if len(ids) != n:
        raise ValueError(f"{n} client messages but {len(ids)} client ids")
    return ids


class Aggregator:
    """Common part: the index sets of ``union`` (and ``own``) alignment.

    Args:
        size: the model size (the index sets' length).
        alignment: ``union``, ``dense``, ``global`` (and ``own`` under plaintext).
    """

    kind = "abstract"
    value_category = "ciphertext"

    def __init__(self, *, size: int, alignment: str) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        self.size = int(size)
        self.alignment = alignment
        self._own_sets: list[np.ndarray] | None = None

    def union(self, index_msgs: Sequence[bytes], *, clients: Sequence[int] | None = None) -> bytes | None:
        """The union of the clients' index sets, as the message to broadcast (``union`` alignment);
        None under ``own`` (the sets are kept for :meth:`aggregate`)."""
        from medhe.ckks.sparse import decode_index_set, encode_index_set, union_index_sets

        ids = _ids(clients, len(index_msgs))
        sets = []
        for cid, msg in zip(ids, index_msgs):
            try:
                idx = decode_index_set(bytes(msg))
            except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's
                raise ClientMessageError(cid, f"index set does not decode ({exc})") from exc
            if idx.size and (idx[-1] >= self.size or idx[0] < 0):
                raise ClientMessageError(cid, f"index set outside [0, {self.size})")
            sets.append(idx)
        if self.alignment == "own":
            self._own_sets = sets
            return None
        return encode_index_set(union_index_sets(sets), length=self.size)

    def aggregate(self, per_client: Sequence[Sequence[bytes]], *, clients: Sequence[int] | None = None,
                  block: tuple[int, int] | None = None) -> list[bytes]:
        """The sum of one block of every client's value messages (same count per client), to broadcast.

        ``clients`` names the senders in errors (default 0, 1, ...); ``block`` is the value range
        [start, stop) the messages carry (only :class:`SplitAggregator` needs it)."""
        raise NotImplementedError

    @staticmethod
    def _check_counts(per_client: Sequence[Sequence[bytes]], ids: list[int]) -> int:
        if not per_client:
            raise ValueError("aggregate needs at least one client's messages")
        counts = [len(c) for c in per_client]
        for cid, c in zip(ids, counts):
            if c != counts[0]:
                raise ClientMessageError(cid, f"sent {c} messages, client {ids[0]} sent {counts[0]}")
        return counts[0]


class PlainAggregator(Aggregator):
    """Plaintext float32 values: sums them (in client order), under any alignment.

    Under ``own`` alignment each client's values lie at its own index set (from :meth:`union`) and the
    aggregate is two messages: [the support's index set, the sum at the support].
    """

    kind = "plain"
    value_category = "update"

    def __init__(self, setup_message: bytes | None = None, *, size: int, alignment: str) -> None:
        if alignment not in ("own", "union", "dense", "global"):
            raise ValueError(f"alignment must be 'own', 'union', 'dense' or 'global', got {alignment!r}")
        super().__init__(size=size, alignment=alignment)

    def aggregate(self, per_client, *, clients=None, block=None) -> list[bytes]:
        from medhe.ckks.sparse import encode_index_set

        ids = _ids(clients, len(per_client))
        if self._check_counts(per_client, ids) != 1:
            raise ValueError("plaintext clients send one values message per block")
        values = []
        for cid, msgs in zip(ids, per_client):
            if len(msgs[0]) % 4:
                raise ClientMessageError(cid, f"{len(msgs[0])} bytes are not float32 values")
            values.append(np.frombuffer(msgs[0], dtype="<f4"))
        if self._own_sets is not None:
            sets, self._own_sets = self._own_sets, None
            if len(sets) != len(values):
                raise ValueError(f"{len(sets)} index sets but {len(values)} value messages")
            agg = np.zeros(self.size, dtype=np.float32)
            for cid, idx, v in zip(ids, sets, values):
                if v.size != idx.size:
                    raise ClientMessageError(cid, f"{v.size} values for {idx.size} indices")
                agg[idx] += v
            support = np.flatnonzero(agg)
            return [encode_index_set(support, length=self.size), comm.values_message(agg[support])]
        agg = np.zeros(values[0].size, dtype=np.float32)
        for cid, v in zip(ids, values):
            if v.size != agg.size:
                raise ClientMessageError(cid, f"sent {v.size} values, client {ids[0]} sent {agg.size}")
            agg += v
        return [comm.values_message(agg)]


class CKKSAggregator(Aggregator):
    """Adds CKKS ciphertexts with a TenSEAL context loaded from the parameters-only setup bytes."""

    kind = "ckks"

    def __init__(self, setup_message: bytes, *, size: int, alignment: str) -> None:
        from medhe import ckks

        if alignment not in ("union", "dense", "global"):
            raise ValueError(f"alignment must be 'union', 'dense' or 'global', got {alignment!r}")
        super().__init__(size=size, alignment=alignment)
        self.context = ckks.load_server_context(setup_message)  # refuses a secret key

    def aggregate(self, per_client, *, clients=None, block=None) -> list[bytes]:
        import tenseal as ts

        ids = _ids(clients, len(per_client))
        count = self._check_counts(per_client, ids)
        # deserialise everything first: a bad message adds nothing
        loaded = []
        for cid, msgs in zip(ids, per_client):
            row = []
            for j, blob in enumerate(msgs):
                try:
                    row.append(ts.ckks_vector_from(self.context, bytes(blob)))
                except Exception as exc:  # noqa: BLE001 - TenSEAL raises several types
                    raise ClientMessageError(cid, f"ciphertext {j} does not deserialise under the round's "
                                                  f"CKKS parameters ({type(exc).__name__}: {exc})") from exc
            loaded.append(row)
        out = []
        for j in range(count):
            acc = loaded[0][j]
            for cid, row in zip(ids[1:], loaded[1:]):
                try:
                    acc.add_(row[j])
                except Exception as exc:  # noqa: BLE001
                    raise ClientMessageError(cid, f"ciphertext {j} does not add to the others "
                                                  f"({type(exc).__name__}: {exc})") from exc
            out.append(acc.serialize())
        return out


class BFVAggregator(Aggregator):
    """Adds BFV ciphertexts with a SEAL context and Evaluator built from the parameter bytes."""

    kind = "bfv"

    def __init__(self, setup_message: bytes, *, size: int, alignment: str, security_level: int = 128) -> None:
        from medhe import bfv

        if alignment not in ("union", "dense", "global"):
            raise ValueError(f"alignment must be 'union', 'dense' or 'global', got {alignment!r}")
        super().__init__(size=size, alignment=alignment)
        self.server = bfv.BFVServer(setup_message, security_level=security_level)

    def aggregate(self, per_client, *, clients=None, block=None) -> list[bytes]:
        from medhe.bfv.seal import sealapi

        ids = _ids(clients, len(per_client))
        count = self._check_counts(per_client, ids)
        srv = self.server
        loaded = []
        for cid, msgs in zip(ids, per_client):
            row = []
            for j, blob in enumerate(msgs):
                try:
                    ct = srv._io.load(sealapi.Ciphertext(), srv.context, bytes(blob))
                except Exception as exc:  # noqa: BLE001 - SEAL raises several types
                    raise ClientMessageError(cid, f"ciphertext {j} does not deserialise under the round's "
                                                  f"BFV parameters ({type(exc).__name__}: {exc})") from exc
                row.append(ct)
            loaded.append(row)
        out = []
        for j in range(count):
            acc = loaded[0][j]
            for cid, row in zip(ids[1:], loaded[1:]):
                try:
                    srv.evaluator.add_inplace(acc, row[j])
                except Exception as exc:  # noqa: BLE001
                    raise ClientMessageError(cid, f"ciphertext {j} does not add to the others "
                                                  f"({type(exc).__name__}: {exc})") from exc
            out.append(srv._io.dump(acc))
        return out


class SplitAggregator(Aggregator):
    """``he_classifier_only``: the head's blocks (the first ``head_size`` values) to ``encrypted`` (CKKS),
    the others to ``plain``; see :class:`medhe.fl.client.SplitCodec`."""

    kind = "split"

    def __init__(self, *, head_size: int, encrypted: Aggregator, plain: Aggregator, size: int) -> None:
        super().__init__(size=size, alignment="dense")
        self.head_size = int(head_size)
        self.encrypted, self.plain = encrypted, plain

    def aggregate(self, per_client, *, clients=None, block=None) -> list[bytes]:
        if block is None:
            raise ValueError("SplitAggregator needs block=(start, stop) to route the messages")
        start, stop = block
        if stop <= self.head_size:
            return self.encrypted.aggregate(per_client, clients=clients)
        if start >= self.head_size:
            return self.plain.aggregate(per_client, clients=clients)
        raise ValueError(f"block [{start}, {stop}) straddles the head ({self.head_size} values)")


class ClipServer:
    """The server's side of the round's clip bound: fixed (nothing travels) or adaptive
    (:class:`medhe.clipping.QuantileClipBound`: norms once to calibrate, then one bit per client per round;
    the server broadcasts the bound as one float32).

    Args:
        mode: ``none``, ``fixed`` or ``adaptive``.
        fixed: the fixed bound (``dp.clip_norm``).
        initial, target_quantile, lr: the adaptive bound's settings (``clip`` section).
    """

    def __init__(self, *, mode: str, fixed: float, initial: float | None = None, target_quantile: float = 0.5,
                 lr: float = 0.2) -> None:
        from medhe.clipping import QuantileClipBound

        if mode not in ("none", "fixed", "adaptive"):
            raise ValueError(f"mode must be 'none', 'fixed' or 'adaptive', got {mode!r}")
        self.mode = mode
        self.fixed = fixed
        self.adaptive = QuantileClipBound(initial=initial, target_quantile=target_quantile, lr=lr) \
            if mode == "adaptive" else None

    @property
    def needs_norms(self) -> bool:
        """Whether the clients must send their norms (adaptive, not yet calibrated)."""
        return self.adaptive is not None and not self.adaptive.calibrated

    @property
    def value(self) -> float:
        """The current bound."""
        return self.fixed if self.adaptive is None else self.adaptive.value

    def calibrate(self, norm_msgs: Sequence[bytes], *, clients: Sequence[int] | None = None) -> bytes:
        """Calibrate from the clients' norm messages; returns the bound message to broadcast."""
        ids = _ids(clients, len(norm_msgs))
        norms = []
        for cid, msg in zip(ids, norm_msgs):
            if len(msg) != 4:
                raise ClientMessageError(cid, f"a norm message is one float32, got {len(msg)} bytes")
            norms.append(float(np.frombuffer(msg, dtype="<f4")[0]))
        self.adaptive.calibrate(norms)
        return self.bound_message()

    def step(self, bit_msgs: Sequence[bytes], *, clients: Sequence[int] | None = None) -> bytes:
        """Step the adaptive bound from the clients' unclipped bits; returns the bound message to broadcast."""
        ids = _ids(clients, len(bit_msgs))
        bits = []
        for cid, msg in zip(ids, bit_msgs):
            if len(msg) != 1:
                raise ClientMessageError(cid, f"an unclipped bit is one byte, got {len(msg)} bytes")
            bits.append(bool(np.frombuffer(msg, dtype=np.uint8)[0]))
        self.adaptive.step(bits)  # the server sees the bits only
        return self.bound_message()

    def bound_message(self) -> bytes:
        return comm.values_message(np.array([self.value], dtype=np.float32))

    def state_dict(self) -> dict:
        return {} if self.adaptive is None else {"adaptive": dict(vars(self.adaptive))}


def make_aggregator(spec, P, setup_message: bytes | None, *, size: int, head_size: int | None = None) -> Aggregator:
    """The server's aggregator for method ``spec``, from the clients' public setup message only
    (:meth:`medhe.fl.client.ClientCodec.setup_message`; None under plaintext). ``head_size``: for
    ``encrypted_part='head'``, the number of head positions (public: the model's architecture)."""
    from medhe.fl.client import alignment_of

    alignment = alignment_of(spec, P)
    if spec.encrypted_part == "head":
        if head_size is None:
            raise ValueError("encrypted_part='head' needs head_size=")
        return SplitAggregator(head_size=head_size, size=size,
                               encrypted=CKKSAggregator(setup_message, size=head_size, alignment="dense"),
                               plain=PlainAggregator(None, size=size - head_size, alignment="dense"))
    if spec.encryption == "none":
        return PlainAggregator(None, size=size, alignment=alignment)
    if setup_message is None:
        raise ValueError(f"method {spec.name!r} encrypts: the server needs the clients' setup message")
    if spec.encryption == "ckks":
        return CKKSAggregator(setup_message, size=size, alignment=alignment)
    return BFVAggregator(setup_message, size=size, alignment=alignment, security_level=P.bfv.security_level)


def make_clip_server(spec, P) -> ClipServer:
    """The method's clip-bound role: none, the fixed ``dp.clip_norm``, or adaptive (``clip`` section)."""
    mode = spec.clip_mode if spec.clip else "none"
    return ClipServer(mode=mode, fixed=P.dp.clip_norm, initial=P.clip.initial, target_quantile=P.clip.target_quantile,
                      lr=P.clip.lr)
