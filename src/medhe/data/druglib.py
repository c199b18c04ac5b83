"""The paper's data: UCI "Drug Review Dataset (Druglib.com)", id 461, DOI 10.24432/C55G6J.

Two steps, kept apart so the processing can be tested offline on fixtures:

* :func:`fetch_druglib` makes ``drugLibTrain_raw.tsv`` and ``drugLibTest_raw.tsv``
  available in a raw directory (using files already there, else downloading the
  official zip once).
* :func:`process_druglib` turns the two raw TSVs into a :class:`Dataset` exactly as
  the paper describes: concatenate train and test, text = benefitsReview + " " +
  sideEffectsReview + " " + commentsReview, drop empty texts, effectiveness
  Ineffective=1 ... Highly Effective=5, positive iff >= 3, then
  ``train_test_split(test_size=0.2, random_state=42)`` (a plain random split, not
  stratified). On the real files: 4,143 rows, 4,142 kept, 3,313 train / 829 test.

Hash pinning, honestly: the zip could not be downloaded when this module was
written, so its SHA-256 is unknown and :data:`DRUGLIB_ZIP_SHA256` is ``None``. Until
someone pins it, the first download records its hash in a sidecar
``<zip>.sha256`` (trust on first use) and later runs verify the zip against that
sidecar. This protects against a file changing between runs, not against a bad
first download.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from medhe.data.dataset import Dataset

log = logging.getLogger(__name__)

DRUGLIB_URL = "https://archive.ics.uci.edu/static/public/461/drug+review+dataset+druglib+com.zip"
DRUGLIB_ZIP_NAME = "drug+review+dataset+druglib+com.zip"
DRUGLIB_DOI = "10.24432/C55G6J"
#: SHA-256 of the official zip. Unknown (never downloaded here): pin it once you have it.
DRUGLIB_ZIP_SHA256: str | None = None
TRAIN_FILE = "drugLibTrain_raw.tsv"
TEST_FILE = "drugLibTest_raw.tsv"
TEXT_COLUMNS = ("benefitsReview", "sideEffectsReview", "commentsReview")
EFFECTIVENESS = {
    "Ineffective": 1,
    "Marginally Effective": 2,
    "Moderately Effective": 3,
    "Considerably Effective": 4,
    "Highly Effective": 5,
}
POSITIVE_FROM = 3
TEST_SIZE = 0.2
RANDOM_STATE = 42


# ---------------------------------------------------------------- fetching --


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_zip(zip_path: Path) -> str:
    """Check the zip against the pinned hash, else the sidecar, else write the sidecar."""
    actual = _sha256(zip_path)
    sidecar = zip_path.with_name(zip_path.name + ".sha256")
    if DRUGLIB_ZIP_SHA256 is not None:
        expected, source = DRUGLIB_ZIP_SHA256.lower(), "DRUGLIB_ZIP_SHA256 in medhe.data.druglib"
    elif sidecar.is_file():
        expected, source = sidecar.read_text().split()[0].lower(), f"sidecar {sidecar}"
    else:
        sidecar.write_text(f"{actual}  {zip_path.name}\n")
        log.warning(
            "Druglib zip SHA-256 is %s (recorded in %s). No hash is pinned yet: please set "
            "medhe.data.druglib.DRUGLIB_ZIP_SHA256 = %r after checking the file.",
            actual, sidecar, actual,
        )
        return actual
    if actual != expected:
        raise ValueError(
            f"SHA-256 mismatch for {zip_path}: got {actual}, expected {expected} from {source}. "
            f"The file is corrupt or changed; delete it (and its .sha256 sidecar only if you "
            f"trust the new file) and fetch again from {DRUGLIB_URL}."
        )
    return actual


def _download(url: str, target: Path, *, timeout: float) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, partial.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise ConnectionError(
            f"Could not download the Druglib.com data from {url} ({exc}). Without network "
            f"access, download it elsewhere (UCI ML Repository id 461, DOI {DRUGLIB_DOI}) and "
            f"put the zip at {target}, or put {TRAIN_FILE} and {TEST_FILE} in {target.parent}."
        ) from exc
    partial.replace(target)


def _members(zip_path: Path) -> dict[str, str]:
    """Map TSV file name -> member name, checking the zip is readable and complete."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = {Path(m).name: m for m in zf.namelist() if not m.endswith("/")}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{zip_path} is not a valid zip file ({exc}); delete it and fetch again "
                         f"from {DRUGLIB_URL}") from exc
    missing = [name for name in (TRAIN_FILE, TEST_FILE) if name not in members]
    if missing:
        raise ValueError(f"{missing} not found inside {zip_path} (members: {sorted(members)})")
    return members


def _extract(zip_path: Path, raw_dir: Path) -> None:
    members = _members(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        for name in (TRAIN_FILE, TEST_FILE):
            if not (raw_dir / name).is_file():
                with zf.open(members[name]) as src, (raw_dir / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)


def fetch_druglib(
    raw_dir: str | Path = "data/raw", *, timeout: float = 10.0, download: bool = True
) -> tuple[Path, Path]:
    """Make the two Druglib.com raw TSVs available, downloading the official zip if needed.

    Order of preference, so that an offline machine with the files never touches
    the network: (1) a zip already in ``raw_dir`` (hash-checked, then the TSVs are
    extracted next to it if missing); (2) both TSVs already in ``raw_dir`` (used as
    is: without the zip there is nothing to hash-check); (3) download from
    :data:`DRUGLIB_URL`, hash-check, extract.

    Hash check: against :data:`DRUGLIB_ZIP_SHA256` when pinned; otherwise against
    the sidecar ``<zip>.sha256``, which is written (and the hash logged with a
    request to pin it) the first time a zip is seen.

    Args:
        raw_dir: Directory for the zip and the TSVs (created if missing).
        timeout: Seconds before a network attempt is abandoned; must be > 0.
        download: If False, never use the network (missing files are an error).

    Returns:
        ``(train_tsv, test_tsv)`` paths.

    Raises:
        ConnectionError: If a download was needed and failed; the message names the
            URL and where to put a manually downloaded file.
        FileNotFoundError: If ``download`` is False and the files are absent.
        ValueError: If the zip does not match its pinned or recorded SHA-256.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    raw = Path(raw_dir)
    zip_path = raw / DRUGLIB_ZIP_NAME
    tsvs = (raw / TRAIN_FILE, raw / TEST_FILE)
    if not zip_path.is_file() and all(p.is_file() for p in tsvs):
        log.info("Using Druglib TSVs already in %s (no zip to hash-check)", raw)
        return tsvs
    if not zip_path.is_file():
        if not download:
            raise FileNotFoundError(
                f"Druglib.com data not found: put {DRUGLIB_ZIP_NAME} (from {DRUGLIB_URL}) at "
                f"{zip_path}, or {TRAIN_FILE} and {TEST_FILE} in {raw}."
            )
        raw.mkdir(parents=True, exist_ok=True)
        _download(DRUGLIB_URL, zip_path, timeout=float(timeout))
    _members(zip_path)  # never record the hash of a broken or incomplete file
    _verify_zip(zip_path)
    _extract(zip_path, raw)
    return tsvs


# -------------------------------------------------------------- processing --


def _read_raw(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", index_col=0, dtype=str)
    for column in ("effectiveness", *TEXT_COLUMNS):
        if column not in frame.columns:
            raise ValueError(
                f"column {column!r} missing from {path} (found {list(frame.columns)})"
            )
    return frame


def druglib_frame(train_tsv: str | Path, test_tsv: str | Path) -> pd.DataFrame:
    """The paper's cleaned table before splitting: columns ``text``, ``effectiveness_score``, ``label``.

    Train rows come first, then test rows (``pd.concat`` order, index reset); rows
    whose joined text is empty or whitespace are dropped. The text is the plain
    space-join of the three review fields with NaN as "" (no other cleaning).

    Args:
        train_tsv: Path to ``drugLibTrain_raw.tsv``.
        test_tsv: Path to ``drugLibTest_raw.tsv``.

    Returns:
        The cleaned DataFrame; ``attrs["n_raw"]`` and ``attrs["n_dropped_empty"]`` record counts.

    Raises:
        ValueError: On a missing column or an unknown effectiveness value (naming the file).
    """
    frames = []
    for path in (Path(train_tsv), Path(test_tsv)):
        frame = _read_raw(path)
        values = frame["effectiveness"].fillna("<missing>")
        unknown = sorted(set(values) - set(EFFECTIVENESS))
        if unknown:
            raise ValueError(f"unknown effectiveness value(s) {unknown} in {path}")
        frames.append(frame)
    both = pd.concat(frames, ignore_index=True)
    text = both[TEXT_COLUMNS[0]].fillna("").astype(str)
    for column in TEXT_COLUMNS[1:]:
        text = text + " " + both[column].fillna("").astype(str)
    keep = text.str.strip() != ""
    score = both["effectiveness"].map(EFFECTIVENESS).astype(np.int64)
    out = pd.DataFrame({"text": text, "effectiveness_score": score,
                        "label": (score >= POSITIVE_FROM).astype(np.int64)})[keep]
    out = out.reset_index(drop=True)
    out.attrs.update(n_raw=len(both), n_dropped_empty=int((~keep).sum()))
    return out


def process_druglib(train_tsv: str | Path, test_tsv: str | Path) -> Dataset:
    """The paper's Druglib.com dataset: :func:`druglib_frame`, then an 80/20 random split.

    The split is ``sklearn.model_selection.train_test_split(test_size=0.2,
    random_state=42)`` on the cleaned rows, not stratified (the paper says "random
    split"). It is fixed: no seed argument changes it.

    Args:
        train_tsv: Path to ``drugLibTrain_raw.tsv``.
        test_tsv: Path to ``drugLibTest_raw.tsv``.

    Returns:
        A text :class:`Dataset` named ``"druglib"``.
    """
    frame = druglib_frame(train_tsv, test_tsv)
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=RANDOM_STATE)
    meta = {
        "source": f"UCI ML Repository id 461, Drug Review Dataset (Druglib.com), DOI {DRUGLIB_DOI}",
        "files": [str(train_tsv), str(test_tsv)],
        "label_rule": "effectiveness Ineffective=1 .. Highly Effective=5; 1 iff score >= 3",
        "text_rule": "benefitsReview + ' ' + sideEffectsReview + ' ' + commentsReview, NaN -> ''",
        "split_rule": "train_test_split(test_size=0.2, random_state=42), not stratified",
        "n_raw": frame.attrs["n_raw"],
        "n_dropped_empty": frame.attrs["n_dropped_empty"],
        "paper_data": True,
    }
    return Dataset(
        name="druglib", kind="text", label_names=("not effective", "effective"), meta=meta,
        x_train=tuple(train["text"]), y_train=train["label"].to_numpy(),
        x_test=tuple(test["text"]), y_test=test["label"].to_numpy(),
    )


def load_druglib(
    raw_dir: str | Path = "data/raw", *, timeout: float = 10.0, download: bool = True
) -> Dataset:
    """:func:`fetch_druglib` then :func:`process_druglib`; arguments as in :func:`fetch_druglib`."""
    train_tsv, test_tsv = fetch_druglib(raw_dir, timeout=timeout, download=download)
    return process_druglib(train_tsv, test_tsv)
