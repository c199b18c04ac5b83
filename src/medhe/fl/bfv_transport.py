"""BFV transport: exact integer aggregation of quantised updates (issue #6).

Round, per client i with weight w_i (as in :mod:`medhe.fl.ckks_transport`):

1. align the sparse payloads (:func:`medhe.fl.transport.align_payloads`: ``union`` reveals every
   index set to the server, ``dense`` reveals nothing but the model size);
2. x_i = w_i * v_i + n_i (weight and DP noise share applied by the client,
   :func:`~medhe.fl.transport.noisy_weighted`);
3. quantise to ``value_bits`` bits against a bound shared by all clients and computed from public
   values only (:func:`~medhe.fl.transport.quantisation_bound`: C, the weights, the number of values
   sent, ``range_factor`` and the DP noise std). Rounding is deterministic (``np.rint``, half to
   even), no randomness is drawn;
4. pack F values per plaintext coefficient with carry room for the client count
   (:mod:`medhe.bfv.layout`), encrypt with the shared secret key, upload seeded ciphertexts;
5. the server (parameters only, no key) adds and sends the full-size sum down to every client;
6. clients check the noise budget, decrypt, unpack the exact integer sum, and dequantise.

Quantisation error feedback: the :class:`~medhe.fl.transport.RoundResult` carries ``feedback``, per client
(payload indices, (x_i - deq(q_i)) / w_i at those positions), in *payload* units. The error is that
of quantising what the client actually encoded, noise included, so the noise share itself is *not*
fed back: the lost signal is w v - (deq(q) - n) = x - deq(q). Feeding back w v - deq(q) instead
would put -n/w into the residual and cancel the DP noise over later rounds. Positions outside the
client's own payload (union positions where it sent only noise) are not fed back either. The
simulator adds ``feedback`` to the client's error-feedback residual
(:meth:`medhe.sparsify.TopKSparsifier.absorb`), so nothing is lost over rounds. Caveat: the
residual is in pre-clipping units and the payload in post-clipping units; where clipping scaled
the payload by c < 1 the error fed back is c times too small (the clipped-off part is not fed back
at all, as before).

Distributed DP, two mechanisms (``noise``):

* :class:`~medhe.fl.transport.GaussianShares`: each client adds its Gaussian share *before* step 3, so
  the share is clipped and rounded per client; the released sum is not the Gaussian-noised sum and
  the Gaussian accountant does not cover it (the run reports epsilon "not covered").
* :class:`~medhe.fl.transport.SkellamShares` (the distributed Skellam mechanism, :mod:`medhe.skellam`):
  step 3 quantises the signal only, against the signal range (no noise widening), rounding each
  client's vector to integers with L2 norm <= D2 = s * C / n (s = L / bound integers per unit,
  :func:`medhe.skellam.round_to_l2`); then each client adds its integer Skellam share of variance
  (z * D2)^2 / n and encodes q + noise modulo t, one value per coefficient (no bit fields, whose
  per-client range the noise could overflow). The server's sum modulo t is a function of the exact
  integer sum, so it is the Skellam mechanism with sensitivity D2 and variance (z * D2)^2: covered by
  the Skellam accountant. Cost: one value per plaintext coefficient instead of F.

``range_factor=None`` quantises against the worst case C * w_max. With C = 1 and k ~ 6.7 M kept
values the typical |w v_i| is about w C / sqrt(k), some 300 times below the 8-bit step
w_max C / 127, so without noise everything quantises to zero and the model never moves (measured:
``benchmarks/quant_range.py``). A finite ``range_factor`` f uses C * w_max * f / sqrt(n_values);
values beyond it saturate and the excess is fed back.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from medhe import bfv
from medhe.ckks.packing import dequantise
from medhe.ckks.sparse import scatter_dense
from medhe.comm import ByteLedger
from medhe.fl.transport import (NoiseFn, Payload, RoundResult, SkellamShares, aligned_noisy, check_round_inputs,
                                 noise_std, own_positions, quantisation_bound, quantise_round, timed)


class BFVTransport:
    """Exact encrypted aggregation of quantised dense or sparse updates with BFV.

    Args:
        cfg: BFV parameters (``params.yaml`` section ``bfv``).
        size: model size d.
        alignment: ``union`` or ``dense`` (see :func:`~medhe.fl.transport.align_payloads`).
        clip_norm: the L2 clipping bound C the clients apply (sets the quantisation bound).
        num_clients: the most clients per round (sets the carry bits).
        range_factor: None for the worst-case bound C * max(w); else C * max(w) * range_factor /
            sqrt(values per client) (:func:`~medhe.fl.transport.quantisation_bound`).
        noise_sigmas: the bound is widened by this many per-client noise stds.
        block_ciphertexts: ciphertexts per client encrypted, summed and decrypted at a time (memory).
        min_budget_bits: refuse parameters whose measured budget after summing ``num_clients``
            ciphertexts is below this.

    Raises:
        InsecureParametersError: from ``cfg`` (raised when the BFVParams is built).
        NoiseBudgetError: if ``num_clients`` ciphertexts leave under ``min_budget_bits`` of budget.
        ValueError: on other bad arguments, naming them.
    """

    name = "bfv"

    def __init__(self, cfg: bfv.BFVParams, *, size: int, alignment: str, clip_norm: float, num_clients: int,
                 range_factor: float | None = None, noise_sigmas: float = 4.0, block_ciphertexts: int = 64,
                 min_budget_bits: int = 1) -> None:
        if not isinstance(cfg, bfv.BFVParams):
            raise TypeError(f"cfg must be a medhe.bfv.BFVParams, got {type(cfg).__name__}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if alignment not in ("union", "dense", "global"):
            raise ValueError(f"alignment must be 'union', 'dense' or 'global', got {alignment!r}")
        if not (isinstance(clip_norm, (int, float)) and math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"clip_norm must be finite and > 0, got {clip_norm!r}")
        quantisation_bound(clip_norm=clip_norm, weights=[1.0], num_values=1, range_factor=range_factor,
                           noise_sigmas=noise_sigmas)  # checks range_factor and noise_sigmas
        if isinstance(block_ciphertexts, bool) or not isinstance(block_ciphertexts, int) or block_ciphertexts < 1:
            raise ValueError(f"block_ciphertexts must be a positive int, got {block_ciphertexts!r}")
        self.cfg = cfg
        self.size = size
        self.alignment = alignment
        self.clip_norm = float(clip_norm)
        self.num_clients = num_clients
        self.range_factor = range_factor
        self.noise_sigmas = float(noise_sigmas)
        self.block_ciphertexts = block_ciphertexts
        self.layout = bfv.FieldLayout(value_bits=cfg.value_bits, num_clients=num_clients,
                                      plain_modulus_bits=cfg.plain_modulus_bits)
        self.client = bfv.BFVClient(cfg)  # the clients' shared key (one object for all simulated clients)
        self._parms_bytes = bfv.parameters_bytes(cfg)
        self.server = bfv.BFVServer(self._parms_bytes, security_level=cfg.security_level)
        self.noise_budget_calibrated = bfv.check_noise_budget(self.client, self.server, num_clients=num_clients,
                                                              min_bits=min_budget_bits)

    def setup(self, ledger: ByteLedger, *, num_clients: int) -> None:
        """One client sends the server the encryption parameters, once (round 0)."""
        if num_clients > self.num_clients:
            raise ValueError(f"num_clients={num_clients} exceeds the {self.num_clients} the layout was sized for")
        ledger.add(self._parms_bytes, round_=0, client=0, direction="up", category="context")

    def bound(self, weights: Sequence[float], num_values: int, noise: NoiseFn | None = None) -> float:
        """The quantisation bound shared by all clients of a round (public inputs only)."""
        return quantisation_bound(clip_norm=self.clip_norm, weights=weights, num_values=num_values,
                                  range_factor=self.range_factor, noise_std=noise_std(noise),
                                  noise_sigmas=self.noise_sigmas)

    # ------------------------------------------------------------------ round

    def round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: NoiseFn | None,
              ledger: ByteLedger, round_: int) -> RoundResult:
        """One round: align, quantise, encrypt, add on the server, decrypt; see the module docstring.

        Raises:
            ValueError: on more payloads than ``num_clients``, a non-positive weight, or bad shapes.
            NoiseBudgetError: if an aggregate ciphertext has no noise budget left (before decoding).
        """
        check_round_inputs(payloads, weights, self.size)
        if len(payloads) > self.num_clients:
            raise ValueError(f"{len(payloads)} payloads but the carry bits are sized for {self.num_clients} clients")
        if min(weights) <= 0:
            raise ValueError(f"aggregation weights must be > 0, got {list(weights)!r}")
        if isinstance(noise, SkellamShares):
            return self._skellam_round(payloads, weights=weights, noise=noise, ledger=ledger, round_=round_)
        timings: dict[str, float] = {"encrypt": 0.0, "aggregate": 0.0, "decrypt": 0.0}
        noise_info: dict[str, float] = {}
        union, xs = aligned_noisy(payloads, weights=weights, noise=noise, alignment=self.alignment, size=self.size,
                                  ledger=ledger, round_=round_, timings=timings, info=noise_info)
        n = int(xs[0].size)
        bound = self.bound(weights, n, noise)
        bits = self.cfg.value_bits
        with timed(timings, "quantise"):
            qs, feedback, quant_info = quantise_round(payloads, xs, weights, union, bits=bits, bound=bound,
                                                      size=self.size)
        total, least = self._exchange(qs, n, ledger, round_, timings)
        info = {"encrypted_values_per_client": float(n), **quant_info, **noise_info,
                "noise_budget_left": float(least),
                "ciphertexts_per_client": float(bfv.num_ciphertexts(n, self.layout,
                                                                    poly_modulus_degree=self.cfg.poly_modulus_degree))}
        mean = dequantise(total, bits=bits, bound=bound)
        if union is None:
            mean = mean.astype(np.float32)
        else:
            mean = scatter_dense(union, mean, length=self.size).astype(np.float32)
            info["union_density"] = union.size / self.size
        return RoundResult(mean, timings, info, feedback=feedback)

    def _skellam_round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: SkellamShares,
                       ledger: ByteLedger, round_: int) -> RoundResult:
        """A round of the distributed Skellam mechanism; see the module docstring."""
        from medhe.skellam import integer_l1_bound, round_to_l2

        timings: dict[str, float] = {"encrypt": 0.0, "aggregate": 0.0, "decrypt": 0.0}
        union, xs = aligned_noisy(payloads, weights=weights, noise=None, alignment=self.alignment, size=self.size,
                                  ledger=ledger, round_=round_, timings=timings)
        n = int(xs[0].size)
        bits = self.cfg.value_bits
        levels = (1 << (bits - 1)) - 1
        bound = self.bound(weights, n, None)
        scale = levels / bound  # integers per unit value
        l2 = scale * noise.sensitivity  # integer L2 sensitivity of the sum
        encs, feedback, zero, saturated = [], [], [], []
        with timed(timings, "quantise"):
            for p, x, w in zip(payloads, xs, weights):
                q = round_to_l2(x * scale, l2=l2, levels=levels)
                idx, pos = own_positions(p, union, self.size)
                feedback.append((idx, (x[pos] - q[pos] / scale) / w))
                if pos.size:
                    zero.append(float(np.mean(q[pos] == 0)))
                    saturated.append(float(np.mean(np.abs(x[pos]) > bound)))
                encs.append(q)
        with timed(timings, "noise"):
            encs = [q + noise.draw(i, n, l2=l2, num_clients=len(encs)) for i, q in enumerate(encs)]
        total, least, n_ct = self._exchange_mod_t(encs, n, ledger, round_, timings)
        info = {"encrypted_values_per_client": float(n), "quant_bound": float(bound),
                "quant_zero_frac": float(np.mean(zero)) if zero else math.nan,
                "quant_saturated_frac": float(np.mean(saturated)) if saturated else math.nan,
                "noise_budget_left": float(least), "ciphertexts_per_client": float(n_ct),
                "skellam_l2_sensitivity": float(l2), "skellam_l1_sensitivity": integer_l1_bound(l2, max(n, 1)),
                "skellam_variance": noise.variance(l2)}
        mean = total.astype(np.float64) / scale
        if union is None:
            mean = mean.astype(np.float32)
        else:
            mean = scatter_dense(union, mean, length=self.size).astype(np.float32)
            info["union_density"] = union.size / self.size
        return RoundResult(mean, timings, info, feedback=feedback)

    def _exchange_mod_t(self, encs: list[np.ndarray], n: int, ledger: ByteLedger, round_: int,
                        timings: dict[str, float]) -> tuple[np.ndarray, int, int]:
        """One integer per coefficient, modulo t: encrypt, add on the server, decrypt, centre.

        Returns the exact integer sums (while |sum| < t/2; the released value is the sum mod t either
        way), the least noise budget and the ciphertexts per client.
        """
        N, t_bits = self.cfg.poly_modulus_degree, self.cfg.plain_modulus_bits
        t = 1 << t_bits
        rows_total = max(1, -(-n // N))
        block_rows = self.block_ciphertexts
        total = np.zeros(n, dtype=np.int64)
        least = None
        for r0 in range(0, rows_total, block_rows):
            r1 = min(rows_total, r0 + block_rows)
            start, stop = r0 * N, min(n, r1 * N)
            plains = []
            with timed(timings, "encrypt"):
                for e in encs:
                    flat = np.zeros((r1 - r0) * N, dtype=np.uint64)
                    flat[: stop - start] = np.mod(e[start:stop], t).astype(np.uint64)
                    plains.append(flat.reshape(r1 - r0, N))
            rows, budget = self._add_block(plains, ledger, round_, timings)
            with timed(timings, "decrypt"):
                v = rows.reshape(-1)[: stop - start].astype(np.int64)  # t <= 2^62: fits
                total[start:stop] = np.where(v >= t // 2, v - t, v)
            least = budget if least is None else min(least, budget)
        return total, (0 if least is None else least), rows_total

    def _exchange(self, qs: list[np.ndarray], n: int, ledger: ByteLedger, round_: int,
                  timings: dict[str, float]) -> tuple[np.ndarray, int]:
        """Encrypt, upload, add, download and decrypt in blocks; returns the exact sums and the least budget."""
        N = self.cfg.poly_modulus_degree
        block = self.block_ciphertexts * self.layout.values_per_ciphertext(N)
        total = np.zeros(n, dtype=np.int64)
        least = None
        for start in range(0, max(n, 1), block):
            stop = min(n, start + block)
            with timed(timings, "encrypt"):
                plains = [bfv.pack_fields(q[start:stop], self.layout, poly_modulus_degree=N) for q in qs]
            rows, budget = self._add_block(plains, ledger, round_, timings)
            with timed(timings, "decrypt"):
                total[start:stop] = bfv.unpack_fields(rows, self.layout, size=stop - start, num_summed=len(qs))
            least = budget if least is None else min(least, budget)
        return total, (0 if least is None else least)

    def _add_block(self, plains: list[np.ndarray], ledger: ByteLedger, round_: int,
                   timings: dict[str, float]) -> tuple[np.ndarray, int]:
        """One block of one round: each client encrypts its encoded rows and uploads them, the server adds,
        every client downloads the sum; returns the decrypted rows and their noise budget. Every
        ciphertext is counted; the broadcast is decrypted once here, timed for one client."""
        uploads = []
        for i, plain in enumerate(plains):
            with timed(timings, "encrypt"):
                blobs = self.client.encrypt(plain)
            ledger.add(blobs, round_=round_, client=i, direction="up", category="ciphertext")
            uploads.append(blobs)
        with timed(timings, "aggregate"):
            agg = self.server.aggregate(uploads)
        for i in range(len(plains)):
            ledger.add(agg, round_=round_, client=i, direction="down", category="ciphertext")
        with timed(timings, "decrypt"):
            return self.client.decrypt(agg)
