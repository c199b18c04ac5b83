"""BFV transport: exact integer aggregation of quantised updates (issue #6).

Round, per client i with weight w_i (as in :mod:`medhe.fl.ckks_transport`):

1. align the sparse payloads (:meth:`medhe.fl.client.ClientCodec.receive_union`: ``union`` reveals every
   index set to the server, ``dense`` reveals nothing but the model size);
2. x_i = w_i * v_i + n_i (weight and DP noise share applied by the client);
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
from medhe.comm import ByteLedger
from medhe.fl.transport import NoiseFn, Payload, RoundResult, check_round_inputs, noise_std, quantisation_bound, run_roles


class BFVTransport:
    """Exact encrypted aggregation of quantised dense or sparse updates with BFV.

    Args:
        cfg: BFV parameters (``params.yaml`` section ``bfv``).
        size: model size d.
        alignment: ``union`` or ``dense`` (see :meth:`medhe.fl.client.ClientCodec.receive_union`).
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
        from medhe.fl.server import BFVAggregator

        self._aggregator = BFVAggregator(self._parms_bytes, size=size, alignment=alignment,
                                        security_level=cfg.security_level)
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

    def aggregator(self):
        """The server's :class:`medhe.fl.server.BFVAggregator` (parameters only)."""
        return self._aggregator

    def codec(self, client: int):
        """Client ``client``'s codec, holding the shared secret key."""
        from medhe.fl.client import BFVCodec

        return BFVCodec(self.client, layout=self.layout, block_ciphertexts=self.block_ciphertexts, client=client,
                        size=self.size, alignment=self.alignment, clip_norm=self.clip_norm,
                        range_factor=self.range_factor, noise_sigmas=self.noise_sigmas, keep_diagnostics=True)

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
        return run_roles(self, payloads, weights=weights, noise=noise, ledger=ledger, round_=round_,
                         server=self.aggregator(), clip_bound=float(self.clip_norm))
