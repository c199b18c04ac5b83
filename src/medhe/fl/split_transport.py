"""Split transport: CKKS on the classifier head, plaintext for the rest of the model.

This is the configuration the paper's public code measures as "HE-only": it encrypts only the
classifier layers (for distilbert-base-uncased, ``pre_classifier`` and ``classifier``: 592,130 of
66,955,010 parameters, about 0.9 %) and sends every other coordinate in the clear. Method
``he_classifier_only`` runs it so that the paper's HE-only byte figure is compared with the
configuration it describes, while ``he_only`` keeps what encrypting the whole update costs.

What it protects: only the head's coordinates. The server sees the other 99 % of every client's
update in plaintext (float32, as under FedAvg), which is enough for the gradient-inversion and
membership attacks that plaintext FedAvg permits.

Both parts use the ordinary transports' roles (:class:`~medhe.fl.ckks_transport.CKKSTransport`, dense,
and :class:`~medhe.fl.transport.PlainTransport`) on sub-vectors, joined by
:class:`medhe.fl.client.SplitCodec` and :class:`medhe.fl.server.SplitAggregator`, so every message is
serialised and counted in the same ledger (categories ``ciphertext`` and ``update``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medhe.comm import ByteLedger
from medhe.fl.transport import NoiseFn, Payload, RoundResult, check_round_inputs


def head_indices(module: Any) -> np.ndarray:
    """Positions, in :func:`medhe.model.get_flat`'s layout, of the model's classifier head.

    For a transformers ``...ForSequenceClassification`` model: the parameters outside the base model
    (``base_model_prefix``), i.e. the classification layers added on top of the pretrained encoder
    (``pre_classifier`` and ``classifier`` for DistilBERT, ``classifier`` for BERT). For another torch
    module (the tabular MLP): the parameters of its last layer. A module that is all head is refused.
    """
    prefix = getattr(module, "base_model_prefix", "")
    if prefix:
        def in_head(name: str) -> bool:
            return not name.startswith(prefix + ".")
    else:
        owners = [n for n, sub in module.named_modules() if any(True for _ in sub.parameters(recurse=False))]
        last = owners[-1] if owners else ""

        def in_head(name: str) -> bool:
            return (name.rsplit(".", 1)[0] if "." in name else "") == last
    out, offset, total = [], 0, 0
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        n = p.numel()
        if in_head(name):
            out.append(np.arange(offset, offset + n, dtype=np.int64))
        offset += n
    head = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    if head.size == 0 or head.size == offset:
        raise ValueError(f"{type(module).__name__} has no separate classifier head ({head.size} of {offset} parameters "
                         "would be encrypted); he_classifier_only needs a model with a base and a head")
    return head


class SplitTransport:
    """Dense updates: the ``head`` coordinates through ``encrypted``, the others through ``plain``.

    Args:
        head: sorted model positions that travel encrypted (:func:`head_indices`).
        encrypted: a dense transport built for ``len(head)`` values (CKKS).
        plain: a dense transport built for ``size - len(head)`` values (plaintext).
        size: the model's number of parameters.
    """

    name = "split"

    def __init__(self, *, head: np.ndarray, encrypted: Any, plain: Any, size: int) -> None:
        head = np.asarray(head, dtype=np.int64)
        if head.ndim != 1 or head.size == 0 or head.size >= size:
            raise ValueError(f"head must be a non-empty 1-d index array smaller than the model ({size}), got "
                             f"shape {head.shape}")
        if np.any(np.diff(head) <= 0) or head[0] < 0 or head[-1] >= size:
            raise ValueError(f"head indices must be sorted, unique and in [0, {size}); fix head_indices' output")
        if encrypted.size != head.size or plain.size != size - head.size:
            raise ValueError(f"sub-transports must carry {head.size} and {size - head.size} values, "
                             f"got {encrypted.size} and {plain.size}")
        self.size = size
        self.head = head
        mask = np.ones(size, dtype=bool)
        mask[head] = False
        self.rest = np.flatnonzero(mask)
        self.encrypted = encrypted
        self.plain = plain

    def setup(self, ledger: ByteLedger, *, num_clients: int) -> None:
        self.encrypted.setup(ledger, num_clients=num_clients)
        self.plain.setup(ledger, num_clients=num_clients)

    def codec(self, client: int):
        """Client ``client``'s :class:`medhe.fl.client.SplitCodec` over the two parts' codecs."""
        from medhe.fl.client import SplitCodec

        return SplitCodec(head=self.head, encrypted=self.encrypted.codec(client), plain=self.plain.codec(client),
                          client=client, size=self.size)

    def aggregator(self):
        """The server's :class:`medhe.fl.server.SplitAggregator` over the two parts' aggregators."""
        from medhe.fl.server import SplitAggregator

        return SplitAggregator(head_size=int(self.head.size), encrypted=self.encrypted.aggregator(),
                               plain=self.plain.aggregator(),
                               size=self.size)

    def round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: NoiseFn | None,
              ledger: ByteLedger, round_: int) -> RoundResult:
        from medhe.fl.transport import run_roles

        check_round_inputs(payloads, weights, self.size)
        if any(p.indices is not None for p in payloads):
            raise ValueError("SplitTransport carries dense updates only (method without sparsify)")
        if noise is not None:  # both parts would draw the same noise stream; no method asks for it
            raise ValueError("SplitTransport does not add DP noise; use a method with noise=False")
        return run_roles(self, payloads, weights=weights, noise=None, ledger=ledger, round_=round_,
                         server=self.aggregator(), clip_bound=getattr(self.encrypted, "clip_norm", None))


def split_transport(P: Any, *, module: Any, size: int, num_clients: int) -> SplitTransport:
    """The ``he_classifier_only`` transport for ``module``: dense CKKS (no packing) on its head, plaintext for
    the rest, with the CKKS parameters of ``P.ckks``."""
    from medhe.fl.ckks_transport import CKKSTransport
    from medhe.fl.transport import PlainTransport

    if module is None:
        raise ValueError("encrypted_part='head' needs the model (module=...) to locate its classifier head")
    head = head_indices(module)
    encrypted = CKKSTransport(P.ckks, size=int(head.size), packing=False, alignment="dense", clip_norm=P.dp.clip_norm,
                              num_clients=num_clients, range_factor=P.quant.range_factor,
                              noise_sigmas=P.quant.noise_sigmas)
    plain = PlainTransport(size=size - int(head.size), alignment="dense")
    return SplitTransport(head=head, encrypted=encrypted, plain=plain, size=size)
