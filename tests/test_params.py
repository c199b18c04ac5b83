"""params.yaml <-> dataclasses, profiles, overrides and boundary checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medhe import params

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_loads_for_every_profile():
    raw = params.read_yaml(ROOT / "params.yaml")
    for name in raw["profiles"]:
        p = params.load(ROOT / "params.yaml", profile=name)
        assert p.seed == raw["seed"]


def test_params_yaml_sections_match_dataclass_fields():
    raw = params.read_yaml(ROOT / "params.yaml")
    for section, cls in params._SECTIONS.items():
        fields = {f.name for f in params.fields(cls)}
        assert set(raw[section]) == fields, f"params.yaml section {section!r} differs from {cls.__name__}"


def test_quick_profile_overrides_defaults():
    p = params.load(ROOT / "params.yaml", profile="quick")
    full = params.load(ROOT / "params.yaml", profile="full")
    assert p.model.max_length < full.model.max_length


def test_unknown_profile_is_an_error():
    with pytest.raises(ValueError, match="profile 'nope' is not defined"):
        params.load(ROOT / "params.yaml", profile="nope")


@pytest.mark.parametrize("raw, match", [
    ({"sparsify": {"sparsity": 1.5}}, r"sparsify.sparsity must be in \[0, 1\), got 1.5"),
    ({"sparsify": {"sparsity": -0.1}}, "got -0.1"),
    ({"dp": {"noise_multiplier": -1}}, "dp.noise_multiplier must be >= 0, got -1"),
    ({"dp": {"delta": 1.0}}, "dp.delta"),
    ({"train": {"rounds": 0}}, "train.rounds must be an integer >= 1, got 0"),
    ({"train": {"lr": 0}}, "train.lr"),
    ({"data": {"dataset": "mnist"}}, "data.dataset must be one of"),
    ({"data": {"num_clients": 0}}, "data.num_clients"),
    ({"model": {"name": "gpt"}}, "model.name must be one of"),
    ({"ckks": {"poly_modulus_degree": 1000}}, "power of two"),
    ({"train": {"rouns": 3}}, r"unknown key\(s\) \['rouns'\]"),
    ({"trian": {}}, r"unknown params section\(s\) \['trian'\]"),
])
def test_bad_values_name_the_value(raw, match):
    with pytest.raises(ValueError, match=match):
        params.load_dict(raw)


def test_overrides_and_digest(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"train": {"rounds": 3}}))
    a = params.load(path)
    b = params.load(path, overrides={"train.rounds": 1})
    assert (a.train.rounds, b.train.rounds) == (3, 1)
    assert a.digest() != b.digest() and a.digest() == params.load(path).digest()


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        params.load(tmp_path / "nope.yaml")
