"""dvc.yaml against the code: every stage declares the modules it runs (ser.deps, the walk that
also fingerprints the training code) and waits for the params check; modules are named as stages;
the library never imports a stage or an application."""

from pathlib import Path

import pytest
import yaml

from ser import deps

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "ser"


def stages():
    data = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, st in data.items():
        st = st.get("do", st)
        words = st["cmd"].split()
        assert words[:2] == ["sh", "bin/stage"], f"{name}: runs {' '.join(words[:2])}, not bin/stage"
        yield name, f"ser.stages.{words[2]}", st


STAGES = list(stages())


@pytest.mark.parametrize("name,module,stage", STAGES, ids=[s[0] for s in STAGES])
def test_stage_declares_exactly_the_modules_it_runs(name, module, stage):
    needed = {deps.source_path(m) for m in deps.stage_modules(module)}
    exempt = {deps.source_path(m) for m in deps.EXEMPT}
    declared = {d for d in stage["deps"] if d.startswith("src/")} - exempt
    assert declared == needed, (
        f"{name}: missing {sorted(needed - declared)}, not imported {sorted(declared - needed)}")


def test_every_stage_waits_for_params_validation():
    for name, _, stage in STAGES:
        if name != "params":
            assert "data/params.ok" in stage["deps"], name


def test_module_names_match_stage_names():
    modules = {m.stem for m in (PKG / "stages").glob("*.py")} - {"__init__"}
    assert {name for name, _, _ in STAGES} == modules
    for name, module, _ in STAGES:
        assert module == f"ser.stages.{name}"


def library_modules() -> list[str]:
    out = []
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1 and parts[1] in ("stages", "apps"):
            continue
        out.append(".".join(parts))
    return sorted(out)


def test_layers_library_stages_apps():
    """The library imports no stage and no application; applications import no stage; no stage
    imports another stage."""
    for m in library_modules():
        bad = [x for x in deps.imports_of(m) if x.startswith(("ser.stages", "ser.apps"))]
        assert not bad, f"library module {m} imports {bad}"
    for f in (PKG / "apps").glob("*.py"):
        m = f"ser.apps.{f.stem}"
        assert not [x for x in deps.imports_of(m) if x.startswith("ser.stages")], m
    for _, module, _ in STAGES:
        assert not [x for x in deps.imports_of(module) if x.startswith("ser.stages")], module


def test_imports_are_found():
    train = deps.imports_of("ser.stages.train_cnn_lstm")
    assert {"ser.cnn_lstm", "ser.store", "ser.predictions", "ser.labels", "ser.cpu",
            "ser.modelfile", "ser.deps"} <= train
    assert "ser.features.logmel" not in train  # reads features through ser.store only
    assert "ser.registry" not in train  # a new family must not retrain the CNN-LSTM
    # what reads and serves models, or only says how fast, retrains nothing: none of it is a dep
    for stage in ("ser.stages.train_cnn_lstm", "ser.stages.train_svm"):
        computed = set(deps.stage_modules(stage))
        assert not computed & {"ser.modelread", "ser.inference", "ser.runs", "ser.analysis",
                               "ser.registry", "ser.cpu", "ser.deps"}, (stage, computed)
    assert {"ser.inference", "ser.cnn_lstm", "ser.svm_pipeline"} <= set(
        deps.stage_modules("ser.stages.evaluate_corpus"))  # the readers it runs, declared
    assert "ser.features.egemaps" in deps.imports_of("ser.stages.features")  # `from ser.features import x`
