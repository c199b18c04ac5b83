"""requirements.txt and environment.yml pin the same packages; the embedded assets exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[a-z,]+\])?)==([^\s]+)", line)  # name[extras]==version
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_environment_yml_matches_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = _pins(pip_list)
    assert conda_pins.pop("torch") == "2.13.0"
    assert conda_pins == req
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_nodeps_packages_are_named_in_environment_yml():
    nodeps = _pins((ROOT / "requirements-nodeps.txt").read_text().splitlines())
    text = (ROOT / "environment.yml").read_text()
    assert nodeps and all(f"{k}=={v}" in text for k, v in nodeps.items())


def test_makefile_installs_the_same_files():
    make = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in make and "-r requirements.txt" in make and "--no-deps -r requirements-nodeps.txt" in make
    assert "-e '.[flower]'" in make  # the package with its Flower extra


def test_flower_extra_is_pinned_as_in_requirements():
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["flower"]
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert _pins(extra) == {"flwr[simulation]": "1.42.0"} == {k: v for k, v in req.items() if k.startswith("flwr")}
