"""The client role: training state and the codec that turns its update into messages and back.

Key model: the clients share one secret key (a TenSEAL CKKS context with its secret key, or a BFV
secret key), set up among themselves out of band and **never sent**. The server receives only the
public setup message (:meth:`ClientCodec.setup_message`: a parameters-only CKKS context, the BFV
encryption parameters, nothing for plaintext) and builds its aggregator from it
(:mod:`medhe.fl.server`).

One round, as a client sees it (every message is ``bytes``):

1. ``begin(plan, payload)`` -> its index-set message (``union`` and ``own`` alignment of a sparse
   payload), else None. ``plan`` is the server's public :class:`~medhe.fl.plan.RoundPlan`.
2. ``receive_union(msg)``: the server's union (``union`` alignment) or None. The codec aligns its values,
   applies its weight and its DP noise share, and quantises against the public bound (packed CKKS, BFV).
   After this, :meth:`ClientCodec.num_values` and :meth:`ClientCodec.blocks` are known.
3. ``encode(start, stop)`` -> its value messages for the values [start, stop) (ciphertexts, or float32
   values in plaintext). One engine loops over :meth:`~ClientCodec.blocks` to bound memory; another
   may send ``encode(0, n)`` at once (every block range is a union of whole blocks).
4. ``decode(start, stop, aggregate)`` -> the decoded sum of the values [start, stop) (decrypted,
   unpacked, dequantised; in the units of the weighted mean).
5. ``finish(decoded)`` -> :class:`ClientRoundResult`: the mean update in model coordinates, the
   quantisation-error feedback for the client's own error-feedback residual, and the round's info.

The training state a deployment keeps between rounds (:class:`Client`: the top-k residual and EMA
threshold, the record-level DP accountant) is available as plain numpy/JSON through
``state_dict()`` / ``load_state_dict()``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from medhe import comm
from medhe.fl.plan import RoundPlan
from medhe.fl.transport import (Payload, SkellamShares, noise_std, own_positions, quantisation_bound,
                                 quantise_client)


@dataclass
class ClientRoundResult:
    """What a client keeps from a round."""

    mean_update: np.ndarray
    """The weighted mean update in model coordinates (float32)."""
    feedback: tuple[np.ndarray, np.ndarray] | None = None
    """(payload indices, quantisation error in payload units) for its error-feedback residual; None where
    nothing is quantised."""
    info: dict[str, float] = field(default_factory=dict)
    """Public per-round facts (values and ciphertexts sent, bound, budget, ...) and this client's own
    quantisation statistics (``quant_zero_frac``, ``quant_saturated_frac``; NaN if it sent no own value)."""
    timings: dict[str, float] = field(default_factory=dict)


def _timed(timings: dict[str, float], phase: str, t0: float) -> None:
    timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - t0


class ClientCodec:
    """One client's side of a transport (see the module docstring for the round).

    Args:
        client: this client's id (as in the plan).
        size: the model size (length of a dense update).
        alignment: ``union``, ``dense``, ``global`` (and ``own`` under plaintext).
        clip_norm: the quantisation's signal range when the plan carries no clip bound.
        range_factor, noise_sigmas: see :func:`~medhe.fl.transport.quantisation_bound`.
        keep_diagnostics: keep this round's signal (w v) and noise share for simulation-only
            measurements (``noise_to_signal``); a deployment leaves it False.
    """

    kind = "abstract"
    value_category = "ciphertext"
    ALIGNMENTS = ("union", "dense", "global")

    def __init__(self, *, client: int, size: int, alignment: str, clip_norm: float = 1.0,
                 range_factor: float | None = None, noise_sigmas: float = 4.0, keep_diagnostics: bool = False) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if alignment not in self.ALIGNMENTS:
            raise ValueError(f"alignment must be one of {self.ALIGNMENTS}, got {alignment!r}")
        self.client = int(client)
        self.size = int(size)
        self.alignment = alignment
        self.clip_norm = float(clip_norm)
        self.range_factor = range_factor
        self.noise_sigmas = float(noise_sigmas)
        self.keep_diagnostics = keep_diagnostics
        self.timings: dict[str, float] = {}
        self._plan: RoundPlan | None = None
        self._payload: Payload | None = None
        self._support: np.ndarray | None = None
        self._x: np.ndarray | None = None
        self._feedback = None
        self._own_stats: dict[str, float] = {}
        self.diagnostics: tuple[np.ndarray, np.ndarray] | None = None
        """(w v, noise share) of the last round when ``keep_diagnostics`` (simulation only)."""
        self.secure_noise = False
        """Draw the Gaussian DP share from the OS CSPRNG (:mod:`medhe.fl.secure_noise`) instead of the plan's
        seeded generator: what a deployment does, since anyone who knows the seed could subtract a seeded share."""

    # ------------------------------------------------------------------ setup

    def setup_message(self) -> bytes | None:
        """The public setup message the server builds its aggregator from (None: nothing to send)."""
        return None

    # ------------------------------------------------------------------ round

    @property
    def sparse(self) -> bool:
        return self._payload is not None and self._payload.indices is not None

    def begin(self, plan: RoundPlan, payload: Payload) -> bytes | None:
        """Start a round with this client's (clipped) payload; returns its index-set message, or None.

        Only ``union`` (and plaintext ``own``) alignment of a sparse payload sends an index set.
        """
        from medhe.ckks.sparse import encode_index_set

        plan.slot(self.client)  # raises if this client is not in the plan
        if payload.indices is None and payload.values.size != self.size:
            raise ValueError(f"client {self.client}: dense payload has {payload.values.size} values, "
                             f"the model has {self.size}")
        self._plan, self._payload = plan, payload
        self._support = self._x = self._feedback = None
        self._own_stats = {}
        self.diagnostics = None
        self.timings = {}
        if payload.indices is not None and self.alignment in ("union", "own"):
            t = time.perf_counter()
            msg = encode_index_set(payload.indices, length=self.size)
            _timed(self.timings, "align", t)
            return msg
        return None

    def receive_union(self, union_msg: bytes | None) -> None:
        """Align to the server's union (``union`` alignment; None otherwise), weight, add noise, quantise."""
        from medhe.ckks.sparse import align_to_union, decode_index_set, scatter_dense

        p = self._require_round()
        t = time.perf_counter()
        if p.indices is None:
            support, v = None, p.values.astype(np.float64)
        elif self.alignment == "union":
            if union_msg is None:
                raise ValueError(f"client {self.client}: alignment 'union' needs the server's union message")
            support = decode_index_set(union_msg)
            v = align_to_union(p.indices, p.values, support)
        elif self.alignment == "dense":
            support, v = None, scatter_dense(p.indices, p.values, length=self.size)
        elif self.alignment == "global":
            support, v = np.asarray(p.indices, dtype=np.int64), p.values.astype(np.float64)
        else:  # own: values at its own indices
            support, v = np.asarray(p.indices, dtype=np.int64), p.values
        _timed(self.timings, "align", t)
        self._support = support
        self._encode_values(v)

    def _noise(self):
        """The round's noise shares: the plan's seeded generator, or with :attr:`secure_noise` the same std drawn
        from the OS CSPRNG (Gaussian shares only; refused for Skellam shares, which have no secure source here)."""
        noise = self._plan.noise_shares()
        if noise is None or not self.secure_noise:
            return noise
        from medhe.fl.secure_noise import SecureGaussianShares
        from medhe.fl.transport import GaussianShares

        if not isinstance(noise, GaussianShares):
            raise ValueError(f"client {self.client}: a secure noise source exists for Gaussian shares only, the plan "
                             f"asks for {self._plan.noise['mechanism']!r} shares; use noise-source 'seeded'")
        return SecureGaussianShares(std=noise.std)

    def _weighted_noisy(self, v: np.ndarray, noise) -> np.ndarray:
        """``w v`` plus this client's noise share; with ``keep_diagnostics`` both kept (:func:`medhe.fl.transport.noise_to_signal`)."""
        t = time.perf_counter()
        x = np.asarray(v, dtype=np.float64) * float(self._plan.weight(self.client))
        share = None
        if noise is not None:
            share = noise(self.client, x.size).astype(np.float64)
            if self.keep_diagnostics:
                self.diagnostics = (x.copy(), share)
            x = x + share
        _timed(self.timings, "noise", t)
        return x

    def _encode_values(self, v: np.ndarray) -> None:
        raise NotImplementedError

    def num_values(self) -> int:
        """Values this client encodes this round (the union's size under ``union``, k under ``global``)."""
        return int(self._require_x().size)

    def blocks(self) -> list[tuple[int, int]]:
        """The value ranges [start, stop) an engine exchanges one at a time (memory stays bounded)."""
        n = self.num_values()
        return [(0, n)]

    def quant_bound(self, num_values: int) -> float:
        """The round's public quantisation bound for ``num_values`` values (plan values only)."""
        plan = self._plan
        clip = self.clip_norm if plan.clip_bound is None else float(plan.clip_bound)
        return quantisation_bound(clip_norm=clip, weights=plan.weights, num_values=num_values,
                                  range_factor=self.range_factor, noise_std=noise_std(plan.noise_shares()),
                                  noise_sigmas=self.noise_sigmas)

    def category(self, start: int, stop: int) -> str:
        """The byte ledger's category of the value messages of block [start, stop) (``ciphertext``, ``update``)."""
        return self.value_category

    def encode(self, start: int, stop: int) -> list[bytes]:
        """This client's value messages for the values [start, stop)."""
        raise NotImplementedError

    def decode(self, start: int, stop: int, aggregate: Sequence[bytes]) -> np.ndarray:
        """The decoded aggregate of the values [start, stop) (float64, weighted-mean units)."""
        raise NotImplementedError

    def finish(self, decoded: np.ndarray) -> ClientRoundResult:
        """The round's result from the decoded aggregate of every value (length :meth:`num_values`)."""
        from medhe.ckks.sparse import scatter_dense

        decoded = np.asarray(decoded)
        if self._support is None:
            mean = decoded.astype(np.float32)
        else:
            mean = scatter_dense(self._support, decoded, length=self.size).astype(np.float32)
        info = self._info()
        if self._support is not None:
            info["union_density"] = self._support.size / self.size
        return ClientRoundResult(mean, self._feedback, info, dict(self.timings))

    def _info(self) -> dict[str, float]:
        return {}

    # ------------------------------------------------------------------ state within a round

    _ROUND_STATE = ("_support", "_x", "_feedback", "_own_stats", "_bound", "_chunks", "_scale", "_skellam", "_least")

    def round_state(self) -> dict[str, Any]:
        """This round's state so far, as numpy arrays and JSON values, for an engine that starts a fresh process
        per message (e.g. between the union exchange and the aggregate): the plan, the payload and what
        :meth:`receive_union` derived (encoded values, support, feedback, bound). Holds no key."""
        out: dict[str, Any] = {"plan": None if self._plan is None else self._plan.to_json()}
        if self._payload is not None:
            out["payload_values"] = np.asarray(self._payload.values)
            out["payload_indices"] = self._payload.indices
        for name in self._ROUND_STATE:
            if hasattr(self, name):
                value = getattr(self, name)
                out[name.lstrip("_")] = list(value) if isinstance(value, tuple) else value
        return out

    def load_round_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`round_state`'s output into a freshly built codec (same method and key)."""
        self._plan = None if state.get("plan") is None else RoundPlan.from_json(state["plan"])
        self._payload = None
        if "payload_values" in state:
            self._payload = Payload(values=np.asarray(state["payload_values"]), indices=state.get("payload_indices"))
        for name in self._ROUND_STATE:
            key = name.lstrip("_")
            if key in state:
                value = state[key]
                setattr(self, name, tuple(value) if name == "_feedback" and value is not None else value)

    def _require_round(self) -> Payload:
        if self._payload is None:
            raise RuntimeError(f"client {self.client}: call begin(plan, payload) first")
        return self._payload

    def _require_x(self) -> np.ndarray:
        if self._x is None:
            raise RuntimeError(f"client {self.client}: call receive_union(...) first")
        return self._x

    def _quantise(self, x: np.ndarray, *, bits: int, bound: float) -> np.ndarray:
        t = time.perf_counter()
        w = float(self._plan.weight(self.client))
        q, fb, zero, saturated = quantise_client(self._payload, x, w, self._support, bits=bits, bound=bound,
                                                 size=self.size)
        self._feedback = fb
        self._own_stats = {"quant_bound": float(bound), "quant_zero_frac": zero, "quant_saturated_frac": saturated}
        _timed(self.timings, "quantise", t)
        return q


class PlainCodec(ClientCodec):
    """Plaintext float32 values: the server sees every client's (weighted, noised) values."""

    kind = "plain"
    value_category = "update"
    ALIGNMENTS = ("own", "union", "dense", "global")

    def _encode_values(self, v: np.ndarray) -> None:
        noise = self._noise()
        if self.sparse and self.alignment == "own" and noise is not None:
            raise ValueError("alignment 'own' cannot carry distributed DP noise: each client would noise only "
                             "its own positions, leaving less than the calibrated std on the sum; "
                             "use alignment 'union' or 'dense'")
        self._x = self._weighted_noisy(v, noise)

    def encode(self, start: int, stop: int) -> list[bytes]:
        return [comm.values_message(self._require_x()[start:stop])]

    def decode(self, start: int, stop: int, aggregate: Sequence[bytes]) -> np.ndarray:
        from medhe.ckks.sparse import decode_index_set

        if self.sparse and self.alignment == "own":  # [support index set, values at the support]
            if len(aggregate) != 2:
                raise ValueError(f"alignment 'own': the aggregate is [index set, values], got {len(aggregate)} messages")
            support = decode_index_set(aggregate[0])
            out = np.zeros(self.size, dtype=np.float32)
            out[support] = np.frombuffer(aggregate[1], dtype="<f4")
            return out
        if len(aggregate) != 1:
            raise ValueError(f"the plaintext aggregate is one message, got {len(aggregate)}")
        return np.frombuffer(aggregate[0], dtype="<f4").copy()

    def finish(self, decoded: np.ndarray) -> ClientRoundResult:
        if self.sparse and self.alignment == "own":  # the aggregate already lies in model coordinates
            return ClientRoundResult(np.asarray(decoded, dtype=np.float32), None, {}, dict(self.timings))
        if self._support is None:
            return ClientRoundResult(np.asarray(decoded).copy(), None, {}, dict(self.timings))
        out = np.zeros(self.size, dtype=np.float32)
        out[self._support] = decoded
        return ClientRoundResult(out, None, {}, dict(self.timings))


class CKKSKeys:
    """The clients' shared CKKS key material: a TenSEAL context with the secret key (never sent).

    ``to_bytes()`` serialises it *with* the secret key, for the clients' own out-of-band sharing;
    :meth:`setup_message` is what the server gets (parameters only).
    """

    def __init__(self, params, *, context=None) -> None:
        from medhe import ckks

        self.params = params
        self.context = ckks.make_client_context(params) if context is None else context
        if not ckks.holds_secret_key(self.context):
            raise ValueError("CKKSKeys needs a context that holds the secret key")
        self.slots = ckks.slot_count(self.context)
        self._setup = ckks.server_context_bytes(self.context)

    def setup_message(self) -> bytes:
        return self._setup

    def to_bytes(self) -> bytes:
        """The secret context, for the clients only (out of band)."""
        return self.context.serialize(save_secret_key=True)

    @classmethod
    def from_bytes(cls, params, data: bytes) -> "CKKSKeys":
        import tenseal as ts

        return cls(params, context=ts.context_from(data))


class CKKSCodec(ClientCodec):
    """CKKS ciphertexts of the weighted, noised values; packed (quantised, several per slot) or not.

    Args:
        keys: the clients' shared :class:`CKKSKeys`.
        packing: None (one value per slot) or a :class:`medhe.ckks.PackingSpec` (its ``bound`` is replaced
            by the round's public bound).
        block_chunks: ciphertexts per block (:meth:`blocks`).
    """

    kind = "ckks"

    def __init__(self, keys: CKKSKeys, *, packing=None, block_chunks: int = 32, **kw: Any) -> None:
        super().__init__(**kw)
        if block_chunks < 1:
            raise ValueError(f"block_chunks must be >= 1, got {block_chunks!r}")
        self.keys = keys
        self.packing = packing
        self.block_chunks = block_chunks
        self._bound = 0.0
        self._chunks = 0

    def setup_message(self) -> bytes:
        return self.keys.setup_message()

    def _encode_values(self, v: np.ndarray) -> None:
        x = self._weighted_noisy(v, self._noise())
        self._bound, self._chunks = 0.0, 0
        if self.packing is not None:
            self._bound = self.quant_bound(int(x.size))
            x = self._quantise(x, bits=self.packing.bits, bound=self._bound)
        self._x = x

    def blocks(self) -> list[tuple[int, int]]:
        n = self.num_values()
        block = self.block_chunks * self.keys.slots * (1 if self.packing is None else self.packing.batch)
        return [(s, min(n, s + block)) for s in range(0, n, block)]

    def _spec(self):
        from medhe import ckks

        p = self.packing
        return ckks.PackingSpec(bits=p.bits, num_clients=p.num_clients, batch=p.batch, bound=self._bound)

    def encode(self, start: int, stop: int) -> list[bytes]:
        from medhe import ckks

        t = time.perf_counter()
        x = self._require_x()[start:stop]
        out = ckks.encrypt_vector(self.keys.context, x) if self.packing is None else \
            ckks.encrypt_packed(self.keys.context, x, self._spec())
        self._chunks += len(out)
        _timed(self.timings, "encrypt", t)
        return out

    def decode(self, start: int, stop: int, aggregate: Sequence[bytes]) -> np.ndarray:
        from medhe import ckks

        t = time.perf_counter()
        n = stop - start
        if self.packing is None:
            out = ckks.decrypt_vector(self.keys.context, aggregate, n)
        else:
            spec = self._spec()
            q = ckks.decrypt_packed(self.keys.context, aggregate, spec, size=n, num_summed=len(self._plan.clients))
            out = ckks.dequantise(np.asarray(q, dtype=np.int64), bits=spec.bits, bound=self._bound)
        _timed(self.timings, "decrypt", t)
        return out

    def _info(self) -> dict[str, float]:
        return {"encrypted_values_per_client": float(self.num_values()), **self._own_stats,
                "ciphertexts_per_client": float(self._chunks)}


class BFVCodec(ClientCodec):
    """BFV ciphertexts of quantised values: F bit fields per coefficient (Gaussian or no noise), or one
    integer per coefficient modulo t plus an integer Skellam share (:mod:`medhe.fl.bfv_transport`).

    Args:
        client_key: the clients' shared :class:`medhe.bfv.BFVClient` (secret key; never sent).
        layout: the :class:`medhe.bfv.FieldLayout` (carry room for the most clients per round).
        block_ciphertexts: ciphertexts per block (:meth:`blocks`).
    """

    kind = "bfv"

    def __init__(self, client_key, *, layout, block_ciphertexts: int = 64, **kw: Any) -> None:
        super().__init__(**kw)
        self.key = client_key
        self.cfg = client_key.params
        self.layout = layout
        self.block_ciphertexts = block_ciphertexts
        self._bound = 0.0
        self._scale = None
        self._skellam: dict[str, float] = {}
        self._least: int | None = None

    def setup_message(self) -> bytes:
        from medhe import bfv

        return bfv.parameters_bytes(self.cfg)

    @property
    def skellam(self) -> bool:
        return isinstance(self._noise(), SkellamShares)

    def _encode_values(self, v: np.ndarray) -> None:
        self._least, self._skellam, self._scale = None, {}, None
        noise = self._noise()
        if not isinstance(noise, SkellamShares):
            x = self._weighted_noisy(v, noise)
            self._bound = self.quant_bound(int(x.size))
            self._x = self._quantise(x, bits=self.cfg.value_bits, bound=self._bound)
            return
        from medhe.skellam import integer_l1_bound, round_to_l2

        x = self._weighted_noisy(v, None)
        n = int(x.size)
        bits = self.cfg.value_bits
        levels = (1 << (bits - 1)) - 1
        self._bound = bound = self.quant_bound(n)
        scale = levels / bound  # integers per unit value
        l2 = scale * noise.sensitivity  # integer L2 sensitivity of the sum
        t = time.perf_counter()
        q = round_to_l2(x * scale, l2=l2, levels=levels)
        idx, pos = own_positions(self._payload, self._support, self.size)
        w = float(self._plan.weight(self.client))
        self._feedback = (idx, (x[pos] - q[pos] / scale) / w)
        self._own_stats = {"quant_bound": float(bound),
                           "quant_zero_frac": float(np.mean(q[pos] == 0)) if pos.size else math.nan,
                           "quant_saturated_frac": float(np.mean(np.abs(x[pos]) > bound)) if pos.size else math.nan}
        _timed(self.timings, "quantise", t)
        t = time.perf_counter()
        self._x = q + noise.draw(self.client, n, l2=l2, num_clients=len(self._plan.clients))
        _timed(self.timings, "noise", t)
        self._scale = scale
        self._skellam = {"skellam_l2_sensitivity": float(l2), "skellam_l1_sensitivity": integer_l1_bound(l2, max(n, 1)),
                         "skellam_variance": noise.variance(l2)}

    def blocks(self) -> list[tuple[int, int]]:
        n = self.num_values()
        N = self.cfg.poly_modulus_degree
        if self._scale is not None:  # Skellam: whole rows of N coefficients
            rows_total = max(1, -(-n // N))
            return [(r0 * N, min(n, min(rows_total, r0 + self.block_ciphertexts) * N))
                    for r0 in range(0, rows_total, self.block_ciphertexts)]
        block = self.block_ciphertexts * self.layout.values_per_ciphertext(N)
        return [(s, min(n, s + block)) for s in range(0, max(n, 1), block)]

    def encode(self, start: int, stop: int) -> list[bytes]:
        from medhe import bfv

        t = time.perf_counter()
        N = self.cfg.poly_modulus_degree
        e = self._require_x()
        if self._scale is not None:
            tmod = 1 << self.cfg.plain_modulus_bits
            rows = max(1, -(-(stop - start) // N))
            flat = np.zeros(rows * N, dtype=np.uint64)
            flat[: stop - start] = np.mod(e[start:stop], tmod).astype(np.uint64)
            plain = flat.reshape(rows, N)
        else:
            plain = bfv.pack_fields(e[start:stop], self.layout, poly_modulus_degree=N)
        out = self.key.encrypt(plain)
        _timed(self.timings, "encrypt", t)
        return out

    def decode(self, start: int, stop: int, aggregate: Sequence[bytes]) -> np.ndarray:
        from medhe import bfv
        from medhe.ckks.packing import dequantise

        t = time.perf_counter()
        rows, budget = self.key.decrypt(aggregate)
        self._least = budget if self._least is None else min(self._least, budget)
        if self._scale is not None:
            tmod = 1 << self.cfg.plain_modulus_bits
            v = rows.reshape(-1)[: stop - start].astype(np.int64)  # t <= 2^62: fits
            out = np.where(v >= tmod // 2, v - tmod, v).astype(np.float64) / self._scale
        else:
            total = bfv.unpack_fields(rows, self.layout, size=stop - start, num_summed=len(self._plan.clients))
            out = dequantise(total, bits=self.cfg.value_bits, bound=self._bound)
        _timed(self.timings, "decrypt", t)
        return out

    def _info(self) -> dict[str, float]:
        from medhe import bfv

        n = self.num_values()
        if self._scale is not None:
            n_ct = max(1, -(-n // self.cfg.poly_modulus_degree))
        else:
            n_ct = bfv.num_ciphertexts(n, self.layout, poly_modulus_degree=self.cfg.poly_modulus_degree)
        return {"encrypted_values_per_client": float(n), **self._own_stats,
                "noise_budget_left": float(0 if self._least is None else self._least),
                "ciphertexts_per_client": float(n_ct), **self._skellam}

    def key_bytes(self) -> bytes:
        """The shared secret key, for the clients only (out of band)."""
        return self.key.secret_key_bytes()


class SplitCodec(ClientCodec):
    """``he_classifier_only``: the classifier head through one codec (CKKS), the rest through another
    (plaintext), dense updates only (:mod:`medhe.fl.split_transport`).

    The values are [head values, rest values]: the head's blocks come first, then the rest's, and each
    block's messages go to the matching part of :class:`medhe.fl.server.SplitAggregator` (the engine passes
    ``block=(start, stop)``).
    """

    kind = "split"

    def __init__(self, *, head: np.ndarray, encrypted: ClientCodec, plain: ClientCodec, client: int, size: int) -> None:
        super().__init__(client=client, size=size, alignment="dense")
        self.head = np.asarray(head, dtype=np.int64)
        mask = np.ones(size, dtype=bool)
        mask[self.head] = False
        self.rest = np.flatnonzero(mask)
        self.encrypted, self.plain = encrypted, plain
        self._h = int(self.head.size)

    def setup_message(self) -> bytes | None:
        return self.encrypted.setup_message()

    def begin(self, plan: RoundPlan, payload: Payload) -> bytes | None:
        if payload.indices is not None:
            raise ValueError("SplitTransport carries dense updates only (method without sparsify)")
        if plan.noise is not None:  # both parts would draw the same noise stream; no method asks for it
            raise ValueError("SplitTransport does not add DP noise; use a method with noise=False")
        self._plan, self._payload = plan, payload
        for codec, idx in ((self.encrypted, self.head), (self.plain, self.rest)):
            codec.begin(plan, Payload(values=np.ascontiguousarray(payload.values[idx])))
        return None

    def receive_union(self, union_msg: bytes | None) -> None:
        self.encrypted.receive_union(None)
        self.plain.receive_union(None)

    def num_values(self) -> int:
        return self.encrypted.num_values() + self.plain.num_values()

    def blocks(self) -> list[tuple[int, int]]:
        h = self._h
        return self.encrypted.blocks() + [(h + a, h + b) for a, b in self.plain.blocks()]

    def _part(self, start: int, stop: int):
        if stop <= self._h:
            return self.encrypted, start, stop
        if start >= self._h:
            return self.plain, start - self._h, stop - self._h
        raise ValueError(f"block [{start}, {stop}) straddles the head ({self._h} values)")

    def category(self, start: int, stop: int) -> str:
        return self._part(start, stop)[0].value_category

    def encode(self, start: int, stop: int) -> list[bytes]:
        codec, a, b = self._part(start, stop)
        return codec.encode(a, b)

    def decode(self, start: int, stop: int, aggregate: Sequence[bytes]) -> np.ndarray:
        codec, a, b = self._part(start, stop)
        return codec.decode(a, b, aggregate)

    def round_state(self) -> dict[str, Any]:
        return {"encrypted": self.encrypted.round_state(), "plain": self.plain.round_state()}

    def load_round_state(self, state: dict[str, Any]) -> None:
        self.encrypted.load_round_state(state["encrypted"])
        self.plain.load_round_state(state["plain"])

    def finish(self, decoded: np.ndarray) -> ClientRoundResult:
        head = self.encrypted.finish(np.asarray(decoded[: self._h]))
        rest = self.plain.finish(np.asarray(decoded[self._h:]))
        mean = np.zeros(self.size, dtype=np.float32)
        mean[self.head] = head.mean_update
        mean[self.rest] = rest.mean_update
        timings = dict(head.timings)
        for phase, sec in rest.timings.items():
            timings[phase] = timings.get(phase, 0.0) + sec
        info = {**rest.info, **head.info, "encrypted_fraction": self._h / self.size}
        return ClientRoundResult(mean, None, info, timings)


# ---------------------------------------------------------------------- training state


class Client:
    """A client's training state: its records and, for sparse methods, its sparsifier (residual), and its
    record-level DP state; see :meth:`state_dict` for what a deployment keeps between rounds."""

    def __init__(self, cid: int, indices: np.ndarray, *, spec, P, size: int) -> None:
        self.cid = cid
        self.indices = indices
        self.spec = spec
        self.sparsifier = None
        if spec.sparsify:
            from medhe.sparsify import TopKSparsifier

            self.sparsifier = TopKSparsifier(size=size, sparsity=P.sparsify.sparsity,
                                             error_feedback=spec.error_feedback, adaptive=spec.adaptive,
                                             ema_alpha=P.sparsify.ema_alpha)
        self.private = record_level_dp(P, num_records=len(indices)) if spec.record_dp else None

    def prepare(self, delta: np.ndarray, *, mask: np.ndarray | None = None) -> tuple[Payload, dict[str, float]]:
        """Top-k with error feedback (at the public ``mask`` under ``global`` alignment), before clipping."""
        info: dict[str, float] = {"update_norm": float(np.linalg.norm(delta))}
        if self.sparsifier is not None:
            sparse = self.sparsifier.compress(delta, mask=mask)
            values, indices = sparse.values.astype(np.float32), sparse.indices
            info["density"] = float(sparse.density)
        else:
            values, indices = delta.astype(np.float32), None
            info["density"] = 1.0
        info["sent_norm_before_clip"] = float(np.linalg.norm(values.astype(np.float64)))
        return Payload(values=values, indices=indices), info

    @staticmethod
    def clip(payload: Payload, *, bound: float) -> Payload:
        """L2-clip the values to ``bound``. What clipping removes is not fed back: it is the method's bias."""
        from medhe.privacy import clip_l2

        values, _ = clip_l2(payload.values, max_norm=bound)
        return Payload(values=values.astype(np.float32), indices=payload.indices)

    def absorb(self, feedback: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Quantisation error back into the error-feedback residual (no-op without a sparsifier)."""
        if feedback is not None and self.sparsifier is not None:
            self.sparsifier.absorb(*feedback)

    def state_dict(self) -> dict[str, Any]:
        """What survives between rounds, as numpy arrays and JSON values: the sparsifier's residual, EMA
        threshold and history, and the record-level DP accountant's history."""
        out: dict[str, Any] = {"cid": int(self.cid)}
        sp = self.sparsifier
        if sp is not None:
            out["sparsifier"] = {
                "residual": None if sp._residual is None else np.array(sp._residual),
                "dtype": str(np.dtype(sp._dtype)), "threshold": sp.threshold, "exact_threshold": sp.exact_threshold,
                "density_history": list(sp.density_history), "capped_history": [bool(c) for c in sp.capped_history],
                "last_sent_nnz": sp.last_sent_nnz}
        if self.private is not None:
            out["record_dp"] = {"history": [list(map(float, h[:-1])) + [int(h[-1])]
                                            for h in self.private.accountant.history],
                                "noise_multiplier": float(self.private.noise_multiplier)}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (raises ValueError on a client id or shape mismatch)."""
        if int(state.get("cid", self.cid)) != int(self.cid):
            raise ValueError(f"state of client {state.get('cid')!r} loaded into client {self.cid}")
        sp = self.sparsifier
        if (sp is None) != ("sparsifier" not in state):
            raise ValueError(f"client {self.cid}: state and method disagree on the sparsifier")
        if sp is not None:
            s = state["sparsifier"]
            res = s["residual"]
            if res is not None and np.asarray(res).shape != (sp.size,):
                raise ValueError(f"client {self.cid}: residual of shape {np.asarray(res).shape}, expected ({sp.size},)")
            sp._residual = None if res is None else np.array(res, dtype=np.dtype(s["dtype"]))
            sp._dtype = np.dtype(s["dtype"])
            sp.threshold, sp.exact_threshold = s["threshold"], s["exact_threshold"]
            sp.density_history = list(s["density_history"])
            sp.capped_history = list(s["capped_history"])
            sp.last_sent_nnz = s["last_sent_nnz"]
        if self.private is not None:
            if "record_dp" not in state:
                raise ValueError(f"client {self.cid}: state has no record-level DP accountant")
            self.private.noise_multiplier = float(state["record_dp"]["noise_multiplier"])
            self.private.accountant.history = [(float(h[0]), float(h[1]), int(h[2]))
                                               for h in state["record_dp"]["history"]]


def record_level_dp(P, *, num_records: int):
    """The client's DP-SGD state (``medhe.dpsgd``) from the ``dp_sgd`` and ``train`` sections."""
    from medhe.dpsgd import RecordLevelDP

    d = P.dp_sgd
    return RecordLevelDP(num_records=num_records, batch_size=P.train.batch_size, epochs=P.train.local_epochs,
                         rounds=P.train.rounds, max_grad_norm=d.max_grad_norm, delta=d.delta,
                         target_epsilon=d.target_epsilon, noise_multiplier=d.noise_multiplier, accountant=d.accountant,
                         freeze_embeddings=d.freeze_embeddings)


# ---------------------------------------------------------------------- adaptive clipping messages


def norm_message(norm: float) -> bytes:
    """A client's update norm (before clipping), to calibrate the adaptive bound: one float32."""
    return comm.values_message(np.array([norm], dtype=np.float32))


def unclipped_bit_message(norm: float, bound: float) -> bytes:
    """A client's one bit for the adaptive bound's step: 1 if its norm was within ``bound``."""
    return np.array([norm <= bound], dtype=np.uint8).tobytes()


def read_bound(msg: bytes) -> float:
    """The clip bound the server broadcast."""
    return float(np.frombuffer(msg, dtype="<f4")[0])


# ---------------------------------------------------------------------- factories (any engine)


def alignment_of(spec, P) -> str:
    """The method's alignment of sparse updates (``spec.alignment``, else ``sparsify.alignment``)."""
    return spec.alignment or P.sparsify.alignment


def make_keys(spec, P):
    """Fresh shared key material for the clients of ``spec``: :class:`CKKSKeys`, a :class:`medhe.bfv.BFVClient`,
    or None (plaintext). One client makes it and shares :func:`key_bytes` with the others out of band."""
    if spec.encryption == "ckks":
        from medhe.fl.ckks_transport import ckks_params

        return CKKSKeys(ckks_params(P.ckks))
    if spec.encryption == "bfv":
        from medhe import bfv

        return bfv.BFVClient(bfv_params(P))
    return None


def bfv_params(P):
    """``params.yaml``'s ``bfv`` section as :class:`medhe.bfv.BFVParams`."""
    from medhe.bfv import BFVParams

    b = P.bfv
    return BFVParams(poly_modulus_degree=b.poly_modulus_degree, coeff_mod_bit_sizes=b.coeff_mod_bit_sizes,
                     plain_modulus_bits=b.plain_modulus_bits, value_bits=b.value_bits, security_level=b.security_level)


def key_bytes(keys) -> bytes | None:
    """The clients' secret key material as bytes (for the clients only; never in a message to the server)."""
    if keys is None:
        return None
    if isinstance(keys, CKKSKeys):
        return keys.to_bytes()
    return keys.secret_key_bytes()


def load_keys(spec, P, data: bytes | None):
    """Inverse of :func:`key_bytes` for method ``spec``."""
    if spec.encryption == "none" or data is None:
        return None
    if spec.encryption == "ckks":
        from medhe.fl.ckks_transport import ckks_params

        return CKKSKeys.from_bytes(ckks_params(P.ckks), data)
    from medhe import bfv

    return bfv.BFVClient.from_secret_key_bytes(bfv_params(P), data)


def make_codec(spec, P, keys, *, client: int, size: int, num_clients: int, head: np.ndarray | None = None,
               keep_diagnostics: bool = False) -> ClientCodec:
    """Client ``client``'s codec for method ``spec`` (what :func:`medhe.fl.simulate.make_transport`'s transport
    builds), holding ``keys`` (from :func:`make_keys` / :func:`load_keys`). ``num_clients``: the most clients
    per round (carry room of packed CKKS and BFV). ``head``: for ``encrypted_part='head'``, the classifier
    head's positions (:func:`medhe.fl.split_transport.head_indices` of the model)."""
    kw = dict(client=client, size=size, alignment=alignment_of(spec, P), clip_norm=P.dp.clip_norm,
              range_factor=P.quant.range_factor, noise_sigmas=P.quant.noise_sigmas, keep_diagnostics=keep_diagnostics)
    if spec.encrypted_part == "head":
        if head is None:
            raise ValueError("encrypted_part='head' needs head= (medhe.fl.split_transport.head_indices(model))")
        h = int(np.asarray(head).size)
        sub = dict(client=client, alignment="dense", clip_norm=P.dp.clip_norm, range_factor=P.quant.range_factor,
                   noise_sigmas=P.quant.noise_sigmas)
        return SplitCodec(head=head, encrypted=CKKSCodec(keys, size=h, **sub),
                          plain=PlainCodec(size=size - h, **sub), client=client, size=size)
    if spec.encryption == "none":
        return PlainCodec(**kw)
    if spec.encryption == "ckks":
        from medhe import ckks

        packing = None
        if spec.packing:
            packing = ckks.PackingSpec(bits=P.ckks.pack_bits, num_clients=num_clients, batch=P.ckks.pack_batch,
                                       bound=1.0)
        return CKKSCodec(keys, packing=packing, **kw)
    from medhe import bfv

    cfg = keys.params
    layout = bfv.FieldLayout(value_bits=cfg.value_bits, num_clients=num_clients,
                             plain_modulus_bits=cfg.plain_modulus_bits)
    return BFVCodec(keys, layout=layout, **kw)
