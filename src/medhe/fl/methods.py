"""The paper's methods and ablations as compositions of the same parts.

A method is a :class:`MethodSpec`: which client-side steps run (top-k with or
without error feedback and the EMA threshold, L2 clipping, distributed Gaussian
noise, record-level DP-SGD in local training) and which transport carries the update (plaintext, or CKKS with or without
batch packing). Nothing is copied per method: :mod:`medhe.fl.simulate` reads the
spec and composes the parts, so an ablation differs from ``medhe`` in exactly the
flag it names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """One federated method: client-side steps plus transport."""

    name: str
    sparsify: bool = False  # top-k on the round update
    error_feedback: bool = False  # keep what was not sent in a local residual
    adaptive: bool = False  # EMA-smoothed keep-threshold instead of the exact top-k
    clip: bool = False  # L2-clip the sent update to dp.clip_norm
    noise: bool = False  # distributed Gaussian noise, multiplier dp.noise_multiplier
    record_dp: bool = False  # record-level DP-SGD inside each client (medhe.dpsgd, Opacus; params dp_sgd)
    encryption: str = "none"  # "none", "ckks" or "bfv" (exact integer aggregation, medhe.bfv)
    packing: bool = False  # CKKS batch packing (quantise + several values per slot)
    alignment: str | None = None  # sparse aggregation; None: sparsify.alignment from params; "own": plaintext only;
    # "global": one public mask for every client (medhe.sparsify.global_mask), no index set travels
    clip_mode: str = "fixed"  # "fixed": dp.clip_norm (the paper's C); "adaptive": tracks a norm quantile (medhe.clipping)
    encrypted_part: str = "all"  # "head": only the classifier head is encrypted (medhe.fl.split_transport)
    dp_mechanism: str = "gaussian"  # "gaussian" shares, or "skellam" integer shares after quantisation (BFV only)

    def __post_init__(self) -> None:
        if self.encryption not in ("none", "ckks", "bfv"):
            raise ValueError(f"encryption must be 'none', 'ckks' or 'bfv', got {self.encryption!r}")
        if self.encryption == "bfv" and not self.clip:
            raise ValueError(f"method {self.name!r}: BFV quantises against the clip bound, so it needs clip=True")
        if self.packing and self.encryption != "ckks":
            raise ValueError(f"method {self.name!r}: packing needs encryption='ckks'")
        if self.packing and not self.clip:
            raise ValueError(f"method {self.name!r}: packing quantises against the clip bound, so it needs clip=True")
        if (self.error_feedback or self.adaptive) and not self.sparsify:
            raise ValueError(f"method {self.name!r}: error_feedback/adaptive need sparsify=True")
        if self.noise and not self.clip:
            raise ValueError(f"method {self.name!r}: Gaussian noise without clipping has no sensitivity bound")
        if self.alignment not in (None, "union", "dense", "own", "global"):
            raise ValueError(f"alignment must be None, 'union', 'dense', 'own' or 'global', got {self.alignment!r}")
        if self.alignment == "global" and (not self.sparsify or self.adaptive):
            raise ValueError(f"method {self.name!r}: alignment 'global' sends every client's values at one public "
                             "mask, so it needs sparsify=True and adaptive=False (no per-client EMA threshold)")
        if self.clip_mode not in ("fixed", "adaptive"):
            raise ValueError(f"clip_mode must be 'fixed' or 'adaptive', got {self.clip_mode!r}")
        if self.clip_mode == "adaptive" and (not self.clip or self.noise):
            raise ValueError(f"method {self.name!r}: clip_mode 'adaptive' needs clip=True and noise=False (under DP the "
                             "accountant needs the fixed bound dp.clip_norm; a private quantile estimate is not implemented)")
        if self.alignment == "own" and self.encryption != "none":
            raise ValueError(f"method {self.name!r}: alignment 'own' (each client's own index set) cannot be "
                             "summed slot by slot under encryption; use 'union' or 'dense'")
        if self.alignment == "own" and self.noise:
            raise ValueError(f"method {self.name!r}: alignment 'own' with noise=True puts each client's noise share "
                             "only on its own positions, so a position selected by m < n clients carries std "
                             "sqrt(m / n) of the calibrated noise; use alignment 'union' or 'dense' for DP")

        if self.dp_mechanism not in ("gaussian", "skellam"):
            raise ValueError(f"dp_mechanism must be 'gaussian' or 'skellam', got {self.dp_mechanism!r}")
        if self.dp_mechanism == "skellam" and not (self.noise and self.encryption == "bfv"):
            raise ValueError(f"method {self.name!r}: the Skellam mechanism adds integer shares to BFV's exact integer "
                             "sum, so it needs noise=True and encryption='bfv'")

        if self.encrypted_part not in ("all", "head"):
            raise ValueError(f"encrypted_part must be 'all' or 'head', got {self.encrypted_part!r}")
        if self.encrypted_part == "head" and (self.encryption != "ckks" or self.sparsify or self.noise):
            raise ValueError(f"method {self.name!r}: encrypted_part='head' is dense CKKS without noise")

    @property
    def dp(self) -> bool:
        return self.noise or self.record_dp


_MEDHE = MethodSpec("medhe", sparsify=True, error_feedback=True, adaptive=True, clip=True, noise=True,
                    encryption="ckks", packing=True)

_NO_DP = dataclasses.replace(_MEDHE, name="medhe_no_dp", noise=False, clip_mode="adaptive")

METHODS: dict[str, MethodSpec] = {
    "fedavg": MethodSpec("fedavg"),
    "he_only": MethodSpec("he_only", encryption="ckks", alignment="dense"),
    "he_classifier_only": MethodSpec("he_classifier_only", encryption="ckks", alignment="dense", encrypted_part="head"),
    "medhe": _MEDHE,
    "medhe_no_ef": dataclasses.replace(_MEDHE, name="medhe_no_ef", error_feedback=False),
    "medhe_no_adaptive": dataclasses.replace(_MEDHE, name="medhe_no_adaptive", adaptive=False),
    "medhe_no_packing": dataclasses.replace(_MEDHE, name="medhe_no_packing", packing=False),
    "medhe_no_he": dataclasses.replace(_MEDHE, name="medhe_no_he", encryption="none", packing=False),
    # without the DP mechanism: no noise, and a clip bound that tracks the update norms (clipping only
    # bounds the quantisation range); "_c1" keeps the paper's fixed C so that its cost shows by itself
    "medhe_no_dp": _NO_DP,
    "medhe_no_dp_c1": dataclasses.replace(_NO_DP, name="medhe_no_dp_c1", clip_mode="fixed"),
    "medhe_no_dp_no_ef": dataclasses.replace(_NO_DP, name="medhe_no_dp_no_ef", error_feedback=False),
    "medhe_no_dp_no_adaptive": dataclasses.replace(_NO_DP, name="medhe_no_dp_no_adaptive", adaptive=False),
    "medhe_no_dp_no_packing": dataclasses.replace(_NO_DP, name="medhe_no_dp_no_packing", packing=False),
    "medhe_bfv": dataclasses.replace(_MEDHE, name="medhe_bfv", encryption="bfv", packing=False),
    "medhe_bfv_skellam": dataclasses.replace(_MEDHE, name="medhe_bfv_skellam", encryption="bfv", packing=False,
                                             dp_mechanism="skellam"),
    "medhe_bfv_no_dp": dataclasses.replace(_NO_DP, name="medhe_bfv_no_dp", encryption="bfv", packing=False),
    # one public mask per round for every client: no index set travels (medhe.sparsify.global_mask)
    "medhe_global": dataclasses.replace(_MEDHE, name="medhe_global", adaptive=False, alignment="global"),
    "medhe_global_no_dp": dataclasses.replace(_NO_DP, name="medhe_global_no_dp", adaptive=False, alignment="global"),
    "medhe_bfv_global_no_dp": dataclasses.replace(_NO_DP, name="medhe_bfv_global_no_dp", adaptive=False,
                                                  alignment="global", encryption="bfv", packing=False),
    "topk": MethodSpec("topk", sparsify=True, error_feedback=True, adaptive=False, alignment="own"),
    # record-level DP-SGD in each client; what follows it (top-k, EF, clipping, CKKS) is post-processing
    "fedavg_dpsgd": MethodSpec("fedavg_dpsgd", record_dp=True),
    "medhe_dpsgd": dataclasses.replace(_MEDHE, name="medhe_dpsgd", noise=False, record_dp=True),
}


def get(name: str) -> MethodSpec:
    """The registered method called ``name``; unknown names list the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {sorted(METHODS)}") from None


def parse_variant(variant: str) -> tuple[str, dict[str, object]]:
    """A run variant ``"method[-s<sparsity>][-b<bits>]"`` -> (method, params overrides).

    ``-s`` sets ``sparsify.sparsity``; ``-b`` sets the bit width of both quantised transports
    (``bfv.value_bits`` and ``ckks.pack_bits``).

    >>> parse_variant("medhe_bfv_no_dp-s0.99-b4")
    ('medhe_bfv_no_dp', {'sparsify.sparsity': 0.99, 'bfv.value_bits': 4, 'ckks.pack_bits': 4})
    >>> parse_variant("fedavg")
    ('fedavg', {})
    """
    name, *parts = str(variant).split("-")
    get(name)
    overrides: dict[str, object] = {}
    for part in parts:
        try:
            if part.startswith("s"):
                overrides["sparsify.sparsity"] = float(part[1:])
                continue
            if part.startswith("b"):
                bits = int(part[1:])
                overrides.update({"bfv.value_bits": bits, "ckks.pack_bits": bits})
                continue
        except ValueError:
            pass
        raise ValueError(f"variant {variant!r}: cannot read {part!r}; write method[-s<sparsity>][-b<bits>], "
                         "e.g. medhe_bfv_no_dp-s0.99-b4")
    return name, overrides
