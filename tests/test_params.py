"""params.yaml, the profiles and dvc.yaml agree with the dataclasses; boundary checks name the value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medhe import params

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))


def test_every_profile_loads_and_names_itself():
    assert {p.stem for p in PROFILES} >= {"quick", "full", "paper", "smoke"}
    for path in PROFILES:
        assert params.load(path).profile == path.stem


def test_profiles_have_exactly_the_dataclass_fields():
    for path in PROFILES:
        raw = params.read_yaml(path)
        assert set(raw) == set(params._SECTIONS) | set(params._SCALARS), path.name
        for section, cls in params._SECTIONS.items():
            assert set(raw[section]) == {f.name for f in params.fields(cls)}, f"{path.name}: {section}"


def test_params_yaml_is_one_of_the_profiles():
    text = (ROOT / "params.yaml").read_text()
    assert any(text == p.read_text() for p in PROFILES), "params.yaml must be a copy of a profiles/*.yaml"


def test_dvc_stages_read_only_existing_params_and_methods():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    raw = params.read_yaml(ROOT / "params.yaml")
    for name, stage in dvc["stages"].items():
        for key in stage.get("params", []):
            node = raw
            for part in key.split("."):
                assert part in node, f"stage {name!r} lists param {key!r}, which params.yaml lacks"
                node = node[part]
    from medhe.fl.methods import METHODS, parse_variant

    for path in PROFILES:
        pipe = params.load(path).pipeline
        for field in ("methods", "sweep_methods", "convergence_methods", "noniid_methods", "scale_methods",
                      "paper_size_methods", "lira_methods"):
            unknown = set(getattr(pipe, field)) - set(METHODS)
            assert not unknown, f"{path.name}: pipeline.{field} names unknown methods {unknown}"
        for variant in (*pipe.target_variants, *pipe.target_ablations):
            parse_variant(variant)  # names a method, a sparsity and a bit width it accepts


@pytest.mark.parametrize("raw, match", [
    ({"sparsify": {"sparsity": 1.5}}, r"sparsify.sparsity must be in \[0, 1\), got 1.5"),
    ({"sparsify": {"sparsity": -0.1}}, "got -0.1"),
    ({"sparsify": {"alignment": "own"}}, "sparsify.alignment"),
    ({"dp": {"noise_multiplier": -1}}, "dp.noise_multiplier must be >= 0, got -1"),
    ({"dp": {"delta": 1.0}}, "dp.delta"),
    ({"train": {"rounds": 0}}, "train.rounds must be an integer >= 1, got 0"),
    ({"train": {"lr": 0}}, "train.lr"),
    ({"data": {"dataset": "mnist"}}, "data.dataset must be one of"),
    ({"data": {"num_clients": 0}}, "data.num_clients"),
    ({"model": {"name": "gpt"}}, "model.name must be one of"),
    ({"ckks": {"poly_modulus_degree": 1000}}, "power of two"),
    ({"quant": {"range_factor": 0}}, "quant.range_factor must be null or > 0, got 0"),
    ({"quant": {"noise_sigmas": -1}}, "quant.noise_sigmas must be >= 0, got -1"),
    ({"bfv": {"range_factor": 4.0}}, r"unknown key\(s\) \['range_factor'\]"),
    ({"pipeline": {"sweep_sparsity": [0.5, 1.2]}}, "pipeline.sweep_sparsity"),
    ({"profile": "../etc"}, "profile must be a simple name"),
    ({"pipeline": {"target_variants": ["topk"], "target_ablations": ["topk", "topk-s0.99"]}},
     r"pipeline.target_ablations repeats target_variants \['topk'\]"),
    ({"seed": 7, "pipeline": {"target_seeds": [42], "target_ablations": ["topk"]}},
     r"run at seed 7, which must be one of pipeline.target_seeds \[42\]"),
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
    c = params.load(path, overrides="train.rounds=1, sparsify.sparsity=0.5")
    assert (a.train.rounds, b.train.rounds, c.train.rounds, c.sparsify.sparsity) == (3, 1, 1, 0.5)
    assert a.digest() != b.digest() and a.digest() == params.load(path).digest()


def test_bad_override_syntax():
    with pytest.raises(ValueError, match="section.key=value"):
        params.parse_overrides("train.rounds")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        params.load(tmp_path / "nope.yaml")


def _medhe_imports(source: str) -> set[str]:
    """Every ``medhe.x.y`` name a source text imports, at top level or inside functions."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "medhe":
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from medhe import fl` names a module
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "medhe")
    return out


def _module_file(name: str) -> Path | None:
    base = ROOT / "src" / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None  # a name imported from a module, not a module


@pytest.mark.parametrize("stage, notebook", [("train", "20_train"), ("privacy_utility", "45_privacy_utility")])
def test_training_stages_depend_on_every_module_a_run_imports(stage, notebook):
    """Changing any module a training run executes must rerun the trial stages, and nothing else must."""
    import json as _json

    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["deps"]
    covered = [ROOT / d for d in deps]
    cells = _json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    todo = list(_medhe_imports(src))
    seen: set[Path] = set()
    while todo:
        f = _module_file(todo.pop())
        if f is None or f in seen:
            continue
        seen.add(f)
        parent = f.parent / "__init__.py"
        if parent.is_file() and parent not in seen:
            todo.append(".".join(parent.relative_to(ROOT / "src").parent.parts))
        todo.extend(_medhe_imports(f.read_text()))
    allowed = {ROOT / "src" / "medhe" / "results.py"}  # run_path only: the output paths dvc.yaml fixes
    uncovered = sorted(str(f.relative_to(ROOT)) for f in seen - allowed
                       if not any(f == c or c in f.parents for c in covered))
    assert not uncovered, f"add to the {stage} stage's deps in dvc.yaml: {uncovered}"
    assert ROOT / "src" / "medhe" / "fl" / "simulate.py" in seen  # the walk found the simulator
