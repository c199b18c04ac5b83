"""The in-process engine: every client codec and the server aggregator in one process, bytes passed in memory.

:func:`exchange` runs one round's messages between the roles and counts every one in the byte ledger
(categories ``index``, ``ciphertext`` / ``update``); :func:`clip_bound` and :func:`clip_step` do the
same for the adaptive clip bound (category ``clip``). Memory stays bounded: the values are exchanged
block by block (:meth:`medhe.fl.client.ClientCodec.blocks`).

All clients share one key and receive the same broadcast, so the engine decrypts each block once (with
the first client's codec) and hands the decoded aggregate to every client; in a deployment each client
decodes its own copy.

Simulation-only measurements: ``noise_to_signal`` (the ratio of the summed noise shares to the summed
weighted signal) needs every client's plaintext, which no party of a deployment has; the engine
computes it from the codecs' ``diagnostics`` (kept only when ``keep_diagnostics``).
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from medhe.comm import ByteLedger
from medhe.fl.client import ClientCodec, norm_message, read_bound, unclipped_bit_message
from medhe.fl.plan import RoundPlan
from medhe.fl.server import Aggregator, ClipServer
from medhe.fl.transport import Payload, RoundResult, noise_to_signal

# the order of the info columns each transport reports (as before the split into roles)
INFO_ORDER = {
    "plain": ("noise_to_signal",),
    "ckks": ("encrypted_values_per_client", "noise_to_signal", "quant_bound", "quant_zero_frac",
             "quant_saturated_frac", "ciphertexts_per_client", "union_density"),
    "bfv": ("encrypted_values_per_client", "quant_bound", "quant_zero_frac", "quant_saturated_frac",
            "noise_to_signal", "noise_budget_left", "ciphertexts_per_client", "skellam_l2_sensitivity",
            "skellam_l1_sensitivity", "skellam_variance", "union_density"),
}


def _add(timings: dict[str, float], phase: str, seconds: float) -> None:
    timings[phase] = timings.get(phase, 0.0) + seconds


def exchange(plan: RoundPlan, codecs: Sequence[ClientCodec], server: Aggregator, payloads: Sequence[Payload], *,
             ledger: ByteLedger) -> RoundResult:
    """One round between ``codecs`` (one per client of ``plan``, in its order) and ``server``.

    Returns the mean update (as every client decodes it), the seconds per phase (client phases summed
    over clients, decryption timed for one client), the round's info columns and, per client, its
    quantisation-error feedback (empty where nothing is quantised).
    """
    if len(codecs) != len(plan.clients) or len(payloads) != len(plan.clients):
        raise ValueError(f"plan has {len(plan.clients)} clients, got {len(codecs)} codecs and {len(payloads)} payloads")
    r = plan.round
    ids = list(plan.clients)
    timings: dict[str, float] = {}
    index_msgs = [c.begin(plan, p) for c, p in zip(codecs, payloads)]
    own = False
    if any(m is not None for m in index_msgs):
        if any(m is None for m in index_msgs):
            raise ValueError("some clients sent an index set and others did not: mixed dense and sparse payloads")
        own = server.alignment == "own"
        t = time.perf_counter()
        union_msg = server.union(index_msgs, clients=ids)
        _add(timings, "align", time.perf_counter() - t)
        if not own:
            for cid, m in zip(ids, index_msgs):
                ledger.add(m, round_=r, client=cid, direction="up", category="index")
            for cid in ids:
                ledger.add(union_msg, round_=r, client=cid, direction="down", category="index")
    else:
        union_msg = None
    if server.alignment == "global":
        _check_global(payloads, ids)
    for c in codecs:
        c.receive_union(union_msg)
    n = codecs[0].num_values()
    blocks = codecs[0].blocks()
    parts = []
    for start, stop in blocks:
        category = codecs[0].category(start, stop)
        sent = [c.encode(start, stop) for c in codecs]
        for cid, msgs in zip(ids, sent):
            if own:
                ledger.add(index_msgs[ids.index(cid)], round_=r, client=cid, direction="up", category="index")
            ledger.add(msgs, round_=r, client=cid, direction="up", category=category)
        t = time.perf_counter()
        agg = server.aggregate(sent, clients=ids, block=(start, stop))
        _add(timings, "aggregate", time.perf_counter() - t)
        for cid in ids:
            if own:  # [support index set, values]
                ledger.add(agg[0], round_=r, client=cid, direction="down", category="index")
                ledger.add(agg[1:], round_=r, client=cid, direction="down", category=category)
            else:
                ledger.add(agg, round_=r, client=cid, direction="down", category=category)
        parts.append(codecs[0].decode(start, stop, agg))
    if len(parts) == 1:
        decoded = parts[0]
    else:
        decoded = np.zeros(n, dtype=np.float64)
        for (start, stop), part in zip(blocks, parts):
            decoded[start:stop] = part
    results = [c.finish(decoded) for c in codecs]
    for i, res in enumerate(results):
        for phase, sec in res.timings.items():
            if phase != "decrypt" or i == 0:
                _add(timings, phase, sec)
    info = _round_info(codecs, results)
    feedback = [res.feedback for res in results]
    return RoundResult(results[0].mean_update, timings, info,
                       feedback=feedback if any(f is not None for f in feedback) else [])


def _check_global(payloads: Sequence[Payload], ids: list[int]) -> None:
    """Simulation-only check: under ``global`` alignment every client sends at the same public mask."""
    if payloads[0].indices is None:
        return
    mask = np.asarray(payloads[0].indices, dtype=np.int64)
    for cid, p in zip(ids, payloads):
        if not np.array_equal(p.indices, mask):
            raise ValueError(f"client {cid}: alignment 'global' needs every client's values at the same public "
                             "mask, but its index set differs from client 0's")


def _round_info(codecs: Sequence[ClientCodec], results) -> dict[str, float]:
    """The round's info columns: the first client's public facts, the clients' mean quantisation fractions
    (over those with own values) and the simulation-only ``noise_to_signal``."""
    merged = merge_client_info([r.info for r in results])
    diags = [c.diagnostics for c in codecs]
    if all(d is not None for d in diags) and len({d[0].size for d in diags}) == 1:
        merged["noise_to_signal"] = noise_to_signal(diags)
    for c in codecs:
        c.diagnostics = None
    order = INFO_ORDER.get(codecs[0].kind, ())
    out = {k: merged[k] for k in order if k in merged}
    out.update({k: v for k, v in merged.items() if k not in out})
    return out


def merge_client_info(infos: Sequence[dict[str, float]]) -> dict[str, float]:
    """The round's public facts from the clients' round info (any engine): the first client's, with the
    quantisation fractions averaged over the clients that had values of their own."""
    merged = dict(infos[0])
    if "quant_zero_frac" in merged:
        own = [i for i in infos if not math.isnan(i["quant_zero_frac"])]
        merged["quant_zero_frac"] = float(np.mean([i["quant_zero_frac"] for i in own])) if own else math.nan
        merged["quant_saturated_frac"] = float(np.mean([i["quant_saturated_frac"] for i in own])) if own else math.nan
    return merged


def clip_bound(server: ClipServer, norms: Sequence[float], *, clients: Sequence[int], ledger: ByteLedger,
               round_: int) -> float:
    """The bound every client clips to this round; calibrates it from the clients' norms first if it must."""
    if not server.needs_norms:
        return server.value
    msgs = [norm_message(n) for n in norms]
    for cid, m in zip(clients, msgs):
        ledger.add(m, round_=round_, client=cid, direction="up", category="clip")
    down = server.calibrate(msgs, clients=clients)
    for cid in clients:
        ledger.add(down, round_=round_, client=cid, direction="down", category="clip")
    return read_bound(down)


def clip_step(server: ClipServer, norms: Sequence[float], *, bound: float, clients: Sequence[int],
              ledger: ByteLedger, round_: int) -> None:
    """Adaptive clipping after the bound is used: each client's unclipped bit up, the next bound down."""
    if server.adaptive is None:
        return
    msgs = [unclipped_bit_message(n, bound) for n in norms]
    for cid, m in zip(clients, msgs):
        ledger.add(m, round_=round_, client=cid, direction="up", category="clip")
    down = server.step(msgs, clients=clients)
    for cid in clients:
        ledger.add(down, round_=round_, client=cid, direction="down", category="clip")
