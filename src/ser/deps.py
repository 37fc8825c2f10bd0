"""Which of the package's modules a module runs: the one import walk behind dvc.yaml's deps (the
deps test holds each stage to it) and the training code's version in model files and checkpoints
(ser.stages.train_cnn_lstm, train_svm), so that both change exactly when DVC's deps do.

Modules are named as imported, e.g. "ser.stages.train_cnn_lstm"; the walk reads source files
(ast), never imports them, and follows every `import ser...` and `from ser... import ...`, also
inside functions, so that no module a stage can run is missed.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Infrastructure that cannot change a stage's output: the error type, atomic writes, the params
# loader (it holds no defaults; each stage declares the params it reads, and the values are hashed),
# glibc's memory settings (ser.cpu: speed only) and this walk itself.
EXEMPT = frozenset({"ser.errors", "ser.io", "ser.params", "ser.cpu", "ser.deps"})


def module_file(module: str) -> Path | None:
    """The source file of a `ser` module or package, None when there is none."""
    parts = module.split(".")
    if parts[0] != "ser":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _direct(module: str) -> set[str]:
    f = module_file(module)
    tree = ast.parse(f.read_text(), str(f))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "ser" or a.name.startswith("ser.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                (node.module == "ser" or node.module.startswith("ser.")):
            for a in node.names:  # `from ser.features import logmel`: a module; else a name
                sub = f"{node.module}.{a.name}"
                found.add(sub if module_file(sub) else node.module)
    return {m for m in found if module_file(m)}


def imports_of(module: str) -> set[str]:
    """The ser modules `module` imports, directly or through others (not itself)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for m in _direct(todo.pop()):
            if m not in seen and m != module:
                seen.add(m)
                todo.append(m)
    return seen


def stage_modules(module: str) -> list[str]:
    """`module` and every module it runs that can change an output, sorted."""
    return sorted(({module} | imports_of(module)) - EXEMPT)


def source_path(module: str, root: Path | None = None) -> str:
    """A module's file as dvc.yaml names it, e.g. src/ser/stages/train_svm.py."""
    f = module_file(module)
    root = root or PACKAGE_DIR.parents[1]
    return f.relative_to(root).as_posix()


def code_hash(module: str) -> str:
    """sha256 over the source of every module stage_modules(module) lists, names included."""
    h = hashlib.sha256()
    for m in stage_modules(module):
        h.update(m.encode() + b"\0" + module_file(m).read_bytes() + b"\0")
    return h.hexdigest()
