"""dvc.yaml against the code: every stage declares the modules it imports (transitively) and the
params it reads, so that a change to either reruns exactly the stages it can affect."""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "ser"
# Infrastructure that cannot change an output: the error type, atomic writes, and the params
# loader (it holds no defaults; each stage declares the params it reads).
EXEMPT = {"errors", "io", "params"}


def imports_of(module: str) -> set[str]:
    """The ser modules `module` imports, directly or through others ('__init__' when it uses the
    package's own names, e.g. `import ser` for ser.__version__)."""
    seen, todo = set(), [module]
    while todo:
        tree = ast.parse((PKG / f"{todo.pop()}.py").read_text())
        for node in ast.walk(tree):
            found = []
            if isinstance(node, ast.ImportFrom) and node.module == "ser":  # modules, or __init__'s names
                found = [a.name if (PKG / f"{a.name}.py").exists() else "__init__" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ser."):
                found = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                found = [a.name.split(".")[1] if "." in a.name else "__init__"
                         for a in node.names if a.name == "ser" or a.name.startswith("ser.")]
            for name in found:
                if name not in seen and (PKG / f"{name}.py").exists():
                    seen.add(name)
                    todo.append(name)
    return seen


def stages():
    data = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, st in data.items():
        st = st.get("do", st)
        m = re.search(r"python -m ser\.(\w+)", st["cmd"])
        yield name, m.group(1), st


@pytest.mark.parametrize("name,module,stage", list(stages()), ids=[s[0] for s in stages()])
def test_stage_declares_exactly_the_modules_it_imports(name, module, stage):
    needed = ({module} | imports_of(module)) - EXEMPT
    declared = {Path(d).stem for d in stage["deps"] if d.startswith("src/ser/")}
    assert declared - EXEMPT == needed, (
        f"{name}: missing {sorted(needed - declared)}, not imported {sorted(declared - needed)}")


def test_every_stage_waits_for_params_validation():
    for name, _, stage in stages():
        if name != "params":
            assert "data/params.ok" in stage["deps"], name


def test_module_names_match_stage_names():
    renamed = {"download": "corpus", "train_svm": "svm", "train_cnn_lstm": "train"}
    for name, module, _ in stages():
        assert module == renamed.get(name, name)


def test_imports_are_found():
    assert {"model", "store", "evaluate", "labels", "cpu"} <= imports_of("train")
    assert "features_logmel" not in imports_of("train")  # reads features through ser.store only
