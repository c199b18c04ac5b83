"""Typed, frozen parameters: ``params.yaml`` -> :func:`load` -> :class:`Params`.

One dataclass per ``params.yaml`` section. Every numeric knob is checked when the
dataclass is built, so a bad value fails in the first second with an error that
names it, not after an hour of training.

>>> p = load_dict({"train": {"rounds": 2}})
>>> p.train.rounds, p.train.local_epochs
(2, 2)
>>> load_dict({"sparsify": {"sparsity": 1.5}})
Traceback (most recent call last):
...
ValueError: sparsify.sparsity must be in [0, 1), got 1.5
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

DATASETS = ("drugscom", "druglib", "breast_cancer")
MODELS = ("minilm", "distilbert", "distilbert-arch", "mlp")
PARTITIONS = ("iid", "dirichlet")
DEVICES = ("auto", "cpu", "cuda", "cuda:<index>")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def is_device_name(name: object) -> bool:
    """True for the device names ``train.device`` accepts: auto, cpu, cuda, cuda:<index>.

    >>> [is_device_name(d) for d in ("auto", "cpu", "cuda", "cuda:1", "gpu", "cuda:x")]
    [True, True, True, True, False, False]
    """
    return isinstance(name, str) and re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", name) is not None


@dataclass(frozen=True)
class DataParams:
    """Which data, how much of it, and how it is split over clients."""

    dataset: str = "drugscom"
    max_train: int | None = None  # None = all training records
    max_test: int | None = None  # None = the whole test split
    num_clients: int = 5
    partition: str = "iid"  # the paper's equal IID split; "dirichlet" for non-IID
    dirichlet_alpha: float = 0.1
    raw_dir: str = "data/raw"

    def __post_init__(self) -> None:
        _check(self.dataset in DATASETS, f"data.dataset must be one of {DATASETS}, got {self.dataset!r}")
        _check(self.partition in PARTITIONS, f"data.partition must be one of {PARTITIONS}, got {self.partition!r}")
        _check(isinstance(self.num_clients, int) and self.num_clients >= 1,
               f"data.num_clients must be an integer >= 1, got {self.num_clients!r}")
        _check(self.dirichlet_alpha > 0, f"data.dirichlet_alpha must be > 0, got {self.dirichlet_alpha!r}")
        for name in ("max_train", "max_test"):
            v = getattr(self, name)
            _check(v is None or (isinstance(v, int) and v >= 2), f"data.{name} must be null or an integer >= 2, got {v!r}")


@dataclass(frozen=True)
class ModelParams:
    """Which model; ``max_length`` is the tokenizer's maximum length in tokens."""

    name: str = "minilm"
    max_length: int = 128
    hidden: int = 32  # hidden width of the tabular MLP

    def __post_init__(self) -> None:
        _check(self.name in MODELS, f"model.name must be one of {MODELS}, got {self.name!r}")
        _check(isinstance(self.max_length, int) and 8 <= self.max_length <= 512,
               f"model.max_length must be an integer in [8, 512], got {self.max_length!r}")
        _check(isinstance(self.hidden, int) and self.hidden >= 1, f"model.hidden must be an integer >= 1, got {self.hidden!r}")


@dataclass(frozen=True)
class TrainParams:
    """Federated training: rounds, local epochs, batch size, Adam learning rate."""

    rounds: int = 3
    local_epochs: int = 2
    batch_size: int = 8
    lr: float = 1e-4
    eval_batch_size: int = 64
    torch_threads: int = 2
    device: str = "auto"  # local training, evaluation, attacks: auto = CUDA if available, else CPU

    def __post_init__(self) -> None:
        for name in ("rounds", "local_epochs", "batch_size", "eval_batch_size", "torch_threads"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, f"train.{name} must be an integer >= 1, got {v!r}")
        _check(is_device_name(self.device), f"train.device must be one of {DEVICES}, got {self.device!r}")
        _check(isinstance(self.lr, (int, float)) and 0 < self.lr < 1, f"train.lr must be in (0, 1), got {self.lr!r}")


@dataclass(frozen=True)
class SparsifyParams:
    """Top-k sparsification: ``sparsity`` s drops the fraction s of entries (s = 0.9 keeps 10 %)."""

    sparsity: float = 0.9
    ema_alpha: float = 0.9  # tau_t = alpha * tau_{t-1} + (1 - alpha) * tau_now
    alignment: str = "union"  # sparse aggregation: "union" (shared index set per round) or "dense"
    global_explore: float = 0.8  # alignment "global": fraction of k drawn at random from a public seed

    def __post_init__(self) -> None:
        _check(self.alignment in ("union", "dense"), f"sparsify.alignment must be 'union' or 'dense', got {self.alignment!r}")
        _check(0 <= self.global_explore <= 1, f"sparsify.global_explore must be in [0, 1], got {self.global_explore!r}")
        _check(0 <= self.sparsity < 1, f"sparsify.sparsity must be in [0, 1), got {self.sparsity!r}")
        _check(0 <= self.ema_alpha < 1, f"sparsify.ema_alpha must be in [0, 1), got {self.ema_alpha!r}")


@dataclass(frozen=True)
class CKKSParams:
    """CKKS encryption parameters (TenSEAL); checked against the HE standard by ``medhe.ckks``."""

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 40, 60)
    scale_bits: int = 40
    security_level: int = 128
    encryption: str = "asymmetric"  # or "symmetric" (clients share the secret key either way)
    pack_bits: int = 8  # quantisation bits per value for batch packing
    pack_batch: int = 4  # values per CKKS slot when packing is on (the largest exact B at 8 bits, measured)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", tuple(self.coeff_mod_bit_sizes))
        n = self.poly_modulus_degree
        _check(isinstance(n, int) and n >= 1024 and n & (n - 1) == 0,
               f"ckks.poly_modulus_degree must be a power of two >= 1024, got {n!r}")
        _check(len(self.coeff_mod_bit_sizes) >= 2, f"ckks.coeff_mod_bit_sizes needs >= 2 primes, got {self.coeff_mod_bit_sizes!r}")
        _check(self.security_level in (128, 192, 256), f"ckks.security_level must be 128, 192 or 256, got {self.security_level!r}")
        _check(self.encryption in ("asymmetric", "symmetric"),
               f"ckks.encryption must be 'asymmetric' or 'symmetric', got {self.encryption!r}")
        _check(1 <= self.pack_bits <= 32, f"ckks.pack_bits must be in [1, 32], got {self.pack_bits!r}")
        _check(1 <= self.pack_batch <= 64, f"ckks.pack_batch must be in [1, 64], got {self.pack_batch!r}")
        _check(10 <= self.scale_bits <= 60, f"ckks.scale_bits must be in [10, 60], got {self.scale_bits!r}")


@dataclass(frozen=True)
class BFVConfig:
    """Exact BFV aggregation (``medhe.bfv``): ring, primes, plain modulus 2^bits, value bits."""

    poly_modulus_degree: int = 4096
    coeff_mod_bit_sizes: tuple[int, ...] = (32, 32, 45)
    plain_modulus_bits: int = 55
    value_bits: int = 8
    security_level: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", tuple(self.coeff_mod_bit_sizes))
        _check(1 <= self.value_bits <= 32, f"bfv.value_bits must be in [1, 32], got {self.value_bits!r}")


@dataclass(frozen=True)
class QuantParams:
    """The public quantisation range of packed methods (CKKS packing and BFV); see
    :func:`medhe.fl.transport.quantisation_bound`.

    ``range_factor``: None quantises against the worst case C * w_max (every value of a large
    clipped top-k update then rounds to zero); f quantises against C * w_max * f / sqrt(values).
    ``noise_sigmas``: the range is widened by this many per-client DP noise stds.
    """

    range_factor: float | None = 4.0
    noise_sigmas: float = 4.0

    def __post_init__(self) -> None:
        _check(self.range_factor is None or (isinstance(self.range_factor, (int, float)) and self.range_factor > 0),
               f"quant.range_factor must be null or > 0, got {self.range_factor!r}")
        _check(isinstance(self.noise_sigmas, (int, float)) and self.noise_sigmas >= 0,
               f"quant.noise_sigmas must be >= 0, got {self.noise_sigmas!r}")


@dataclass(frozen=True)
class MIAParams:
    """Membership inference (``medhe.attacks``) run on every trained model."""

    n_bootstrap: int = 1000
    lira: tuple[str, ...] = ()  # LiRA variants ("offline", "online"); each trains n_shadows shadow models
    n_shadows: int = 4
    shadow_method: str | None = None  # None: the target's method
    max_per_side: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lira", tuple(self.lira))
        _check(set(self.lira) <= {"offline", "online"}, f"mia.lira must list 'offline'/'online', got {self.lira!r}")
        _check(isinstance(self.n_shadows, int) and self.n_shadows >= 2, f"mia.n_shadows must be an integer >= 2, got {self.n_shadows!r}")
        _check(isinstance(self.n_bootstrap, int) and self.n_bootstrap >= 1, f"mia.n_bootstrap must be an integer >= 1, got {self.n_bootstrap!r}")


@dataclass(frozen=True)
class DPParams:
    """Client-level Gaussian mechanism: clip to ``clip_norm``, noise multiplier z, target delta."""

    clip_norm: float = 1.0
    noise_multiplier: float = 0.12
    delta: float = 1e-5

    def __post_init__(self) -> None:
        _check(self.clip_norm > 0, f"dp.clip_norm must be > 0, got {self.clip_norm!r}")
        _check(self.noise_multiplier >= 0, f"dp.noise_multiplier must be >= 0, got {self.noise_multiplier!r}")
        _check(0 < self.delta < 1, f"dp.delta must be in (0, 1), got {self.delta!r}")


@dataclass(frozen=True)
class ClipParams:
    """Adaptive clip bound of the methods without the DP mechanism (:mod:`medhe.clipping`).

    ``initial`` None: the ``target_quantile`` of the clients' first-round update norms.
    """

    initial: float | None = None
    target_quantile: float = 0.9  # fraction of clients left unclipped
    lr: float = 1.0  # geometric step; Andrew et al. (2021) use 0.2 over hundreds of rounds, too slow for 3-10

    def __post_init__(self) -> None:
        _check(self.initial is None or self.initial > 0, f"clip.initial must be null or > 0, got {self.initial!r}")
        _check(0 < self.target_quantile <= 1, f"clip.target_quantile must be in (0, 1], got {self.target_quantile!r}")
        _check(self.lr > 0, f"clip.lr must be > 0, got {self.lr!r}")


@dataclass(frozen=True)
class DPSGDParams:
    """Record-level DP-SGD inside each client (``medhe.dpsgd``, Opacus), for methods with ``record_dp``.

    Exactly one of ``target_epsilon`` (the noise multiplier is solved for it over the run's
    planned steps) and ``noise_multiplier``. ``delta`` is per client, over its own records.
    """

    target_epsilon: float | None = 3.0
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0  # per-sample gradient clip norm
    delta: float = 1e-5
    accountant: str = "rdp"  # Opacus accountant: rdp, prv or gdp
    freeze_embeddings: bool = True  # text models: embedding tables fixed during DP-SGD (no per-sample grads)

    def __post_init__(self) -> None:
        _check(isinstance(self.freeze_embeddings, bool), f"dp_sgd.freeze_embeddings must be true or false, got {self.freeze_embeddings!r}")
        _check((self.target_epsilon is None) != (self.noise_multiplier is None),
               "dp_sgd needs exactly one of target_epsilon and noise_multiplier (the other null), "
               f"got {self.target_epsilon!r} and {self.noise_multiplier!r}")
        _check(self.target_epsilon is None or (isinstance(self.target_epsilon, (int, float)) and self.target_epsilon > 0),
               f"dp_sgd.target_epsilon must be null or > 0, got {self.target_epsilon!r}")
        _check(self.noise_multiplier is None or (isinstance(self.noise_multiplier, (int, float)) and self.noise_multiplier >= 0),
               f"dp_sgd.noise_multiplier must be null or >= 0, got {self.noise_multiplier!r}")
        _check(isinstance(self.max_grad_norm, (int, float)) and self.max_grad_norm > 0,
               f"dp_sgd.max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        _check(0 < self.delta < 1, f"dp_sgd.delta must be in (0, 1), got {self.delta!r}")
        _check(self.accountant in ("rdp", "prv", "gdp"), f"dp_sgd.accountant must be rdp, prv or gdp, got {self.accountant!r}")


PRIVACY_POINT = r"none|client-z[0-9]+(\.[0-9]+)?|client-eps[0-9]+(\.[0-9]+)?|record-eps[0-9]+(\.[0-9]+)?"


ENGINES = ("inprocess", "flower")


@dataclass(frozen=True)
class PipelineParams:
    """What the pipeline runs: trials, ablations and sweeps (read by notebooks and dvc.yaml)."""

    methods: tuple[str, ...] = ("fedavg", "medhe")
    seeds: tuple[int, ...] = (42,)
    sweep_sparsity: tuple[float, ...] = (0.9,)
    sweep_methods: tuple[str, ...] = ("medhe",)
    convergence_rounds: int = 10
    convergence_methods: tuple[str, ...] = ("fedavg", "medhe")
    noniid_methods: tuple[str, ...] = ("fedavg", "medhe")
    client_counts: tuple[int, ...] = (5,)
    scale_methods: tuple[str, ...] = ("fedavg", "medhe")
    paper_size_methods: tuple[str, ...] = ("fedavg", "medhe")
    frontier_methods: tuple[str, ...] = ("medhe_bfv_no_dp",)
    frontier_sparsity: tuple[float, ...] = (0.9,)
    frontier_bits: tuple[int, ...] = (8,)
    bench_sample: int = 8  # ciphertexts timed per parameter set in the benchmarks
    lira_methods: tuple[str, ...] = ()  # targets of the LiRA stage (offline LiRA, seed ``seed``)
    lira_shadows: int = 4  # shadow models per LiRA target (each a full federated run of the target's method)
    target_variants: tuple[str, ...] = ()  # rounds/bytes to target: "method[-s<sparsity>][-b<bits>]" (medhe.fl.variants)
    target_seeds: tuple[int, ...] = (42,)
    target_ablations: tuple[str, ...] = ()  # more variants to target, at seed ``seed`` only (stage target_ablation)
    target_rounds: int = 10  # round budget; FedAvg's reference runs all of it
    target_fraction: float = 0.95  # target = this fraction of FedAvg's final macro-F1 (same seed and data)
    privacy_points: tuple[str, ...] = ()  # privacy-utility stage: none, client-z<z>, client-eps<e>, record-eps<e>
    privacy_seeds: tuple[int, ...] = (42,)
    engine: str = "inprocess"  # how medhe.fl.run trains: "inprocess" (one process) or "flower" (Flower's simulation engine)
    flower_scale_clients: tuple[int, ...] = (5, 100)  # client counts of the flower_scale stage (tabular task)

    def __post_init__(self) -> None:
        _check(self.engine in ENGINES, f"pipeline.engine must be one of {ENGINES}, got {self.engine!r}")
        for name in ("methods", "seeds", "sweep_sparsity", "sweep_methods", "convergence_methods",
                     "noniid_methods", "client_counts", "scale_methods", "paper_size_methods",
                     "frontier_methods", "frontier_sparsity", "frontier_bits", "lira_methods", "privacy_points",
                     "privacy_seeds", "target_variants", "target_seeds", "target_ablations", "flower_scale_clients"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check(all(isinstance(s, int) and s >= 0 for s in self.seeds), f"pipeline.seeds must be integers >= 0, got {self.seeds!r}")
        _check(all(isinstance(s, int) and s >= 0 for s in self.privacy_seeds),
               f"pipeline.privacy_seeds must be integers >= 0, got {self.privacy_seeds!r}")
        _check(all(isinstance(p, str) and re.fullmatch(PRIVACY_POINT, p) for p in self.privacy_points),
               f"pipeline.privacy_points must match {PRIVACY_POINT!r}, got {self.privacy_points!r}")
        _check(all(0 <= s < 1 for s in self.sweep_sparsity), f"pipeline.sweep_sparsity must lie in [0, 1), got {self.sweep_sparsity!r}")
        _check(all(isinstance(n, int) and n >= 1 for n in self.client_counts), f"pipeline.client_counts must be integers >= 1, got {self.client_counts!r}")
        _check(len(self.flower_scale_clients) >= 1 and all(isinstance(n, int) and n >= 2 for n in self.flower_scale_clients),
               f"pipeline.flower_scale_clients must be integers >= 2, got {self.flower_scale_clients!r}")
        _check(isinstance(self.lira_shadows, int) and self.lira_shadows >= 2,
               f"pipeline.lira_shadows must be an integer >= 2, got {self.lira_shadows!r}")
        both = sorted(set(self.target_variants) & set(self.target_ablations))
        _check(not both, f"pipeline.target_ablations repeats target_variants {both}: list each variant once")
        _check(isinstance(self.target_rounds, int) and self.target_rounds >= 1,
               f"pipeline.target_rounds must be an integer >= 1, got {self.target_rounds!r}")
        _check(0 < self.target_fraction <= 1, f"pipeline.target_fraction must be in (0, 1], got {self.target_fraction!r}")
        _check(isinstance(self.convergence_rounds, int) and self.convergence_rounds >= 1,
               f"pipeline.convergence_rounds must be an integer >= 1, got {self.convergence_rounds!r}")


@dataclass(frozen=True)
class Params:
    """All sections of ``params.yaml``."""

    seed: int = 42
    profile: str = "custom"  # names the results folder: results/<profile>/...
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    sparsify: SparsifyParams = field(default_factory=SparsifyParams)
    ckks: CKKSParams = field(default_factory=CKKSParams)
    dp: DPParams = field(default_factory=DPParams)
    clip: ClipParams = field(default_factory=ClipParams)
    dp_sgd: DPSGDParams = field(default_factory=DPSGDParams)
    bfv: BFVConfig = field(default_factory=BFVConfig)
    quant: QuantParams = field(default_factory=QuantParams)
    mia: MIAParams = field(default_factory=MIAParams)
    pipeline: PipelineParams = field(default_factory=PipelineParams)

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int) and self.seed >= 0, f"seed must be a non-negative integer, got {self.seed!r}")
        _check(isinstance(self.profile, str) and self.profile.replace("_", "").replace("-", "").isalnum(),
               f"profile must be a simple name (letters, digits, - and _), got {self.profile!r}")
        pl = self.pipeline
        _check(not pl.target_ablations or self.seed in pl.target_seeds,
               f"pipeline.target_ablations run at seed {self.seed}, which must be one of pipeline.target_seeds "
               f"{list(pl.target_seeds)} (its FedAvg reference sets their target)")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), suitable for JSON/YAML."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def digest(self) -> str:
        """Short SHA-256 of the canonical JSON of all parameters."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


_SCALARS = ("seed", "profile")
_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Params) if f.name not in _SCALARS}  # type: ignore[misc]


def _build_section(name: str, raw: Any) -> Any:
    cls = _SECTIONS[name]
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ValueError(f"params section {name!r} must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in params section {name!r}; known keys: {sorted(known)}")
    return cls(**raw)


def load_dict(raw: Mapping[str, Any]) -> Params:
    """Build :class:`Params` from a nested mapping; unknown sections/keys are errors."""
    unknown = sorted(set(raw) - set(_SECTIONS) - set(_SCALARS))
    if unknown:
        raise ValueError(f"unknown params section(s) {unknown}; known: {sorted(_SECTIONS)} and {list(_SCALARS)}")
    kwargs: dict[str, Any] = {name: _build_section(name, raw.get(name)) for name in _SECTIONS}
    kwargs.update({k: raw[k] for k in _SCALARS if k in raw})
    return Params(**kwargs)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def with_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides (``{"train.rounds": 2}``) or nested ones to a raw mapping."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".")
        cur = nested
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
    return _merge(dict(raw), nested)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict, with a clear error if it is missing."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"params file {str(p)!r} not found (working directory: {Path.cwd()})")
    with p.open() as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"params file {str(p)!r} must hold a mapping at top level")
    return raw


def parse_overrides(text: str) -> dict[str, Any]:
    """Parse ``"sparsify.sparsity=0.5,train.rounds=10"`` (values read as YAML scalars).

    >>> parse_overrides("sparsify.sparsity=0.5, data.partition=dirichlet")
    {'sparsify.sparsity': 0.5, 'data.partition': 'dirichlet'}
    >>> parse_overrides("")
    {}
    """
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} must look like section.key=value")
        out[key.strip()] = yaml.safe_load(value.strip())
    return out


def load(path: str | Path = "params.yaml", *, overrides: Mapping[str, Any] | str | None = None) -> Params:
    """Load ``params.yaml`` plus optional dotted overrides (a mapping or ``"a.b=1,c.d=x"``)."""
    raw = read_yaml(path)
    if isinstance(overrides, str):
        overrides = parse_overrides(overrides)
    if overrides:
        raw = with_overrides(raw, overrides)
    return load_dict(raw)
