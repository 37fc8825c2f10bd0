"""Stage release: the speaker-independent (actor-protocol) fold models of every family, copied
into models/ at the repository root, committed to git, so that `ser predict` and `ser serve` work
from a fresh clone without training.

    bin/stage release --models data/models --out models

Writes models/<family>/<run>.model (the safe model-file format: no code runs when one is loaded),
models/manifest.json (per file: family, run, fold, classes, feature family and params, the
training params' sha256, the code version, the file's sha256 and the dvc.lock entry it comes
from: its stage, path and md5, which DVC computes from the file itself, so the stage need not
read dvc.lock; tests/test_release.py holds the two in agreement) and models/README.md (what they
are, and their licence).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import shutil
from pathlib import Path

from ser import modelfile, registry
from ser.errors import SerError, run_cli
from ser.io import atomic_dir
from ser.params import PARAMS_FILE, load_params

log = logging.getLogger("release")
PROTOCOL = "actor"
MANIFEST = "manifest.json"
LICENCE = """# The trained models

The speaker-independent models of this project: for each model family, the {n} fold models of the
actor protocol (each trained on 16 of RAVDESS' 24 actors; another 4 chose its epoch or
hyper-parameters, and the last 4, never seen, tested it). `ser predict` and `ser serve` average
each family's fold models. `manifest.json` gives, per file, where it comes from (its dvc.lock
entry), what it was trained with and its sha256; a file that does not match is refused.

Files: {families}.

Licence: the models are derived from RAVDESS (Livingstone & Russo, 2018; CC BY-NC-SA 4.0), and
the eGeMAPS family's from features computed with openSMILE (audEERING; free for research and
education, not for commercial use): they are for non-commercial research use under the same
terms (attribution, non-commercial, share-alike). The code that made them is MIT.
"""


def stage_of(family: registry.Family, run: str) -> str:
    """The dvc.yaml stage that writes a family's model of a run."""
    if family.stage == "train_svm":
        return f"train_svm@{family.features}-{run}"
    return f"{family.stage}@{run}"


def digest(path: Path, algo: str) -> str:
    return hashlib.new(algo, path.read_bytes()).hexdigest()


def run(params_path: Path, models: Path, out: Path) -> dict:
    params = load_params(params_path)
    folds = params.folds.folds_of(PROTOCOL)
    if not folds:
        raise SerError("folds.runs lists no actor-protocol folds: there is nothing to release")
    files, entries = [], {}
    for fam in registry.FAMILIES.values():
        for k in folds:
            run = f"{PROTOCOL}-{k}"
            src = models / fam.name / f"{run}{modelfile.SUFFIX}"
            meta, _ = modelfile.read(src, family=fam.name)
            rel = f"{fam.name}/{run}{modelfile.SUFFIX}"
            entries[rel] = {
                "family": fam.name, "run": run, "fold": k, "classes": meta["classes"],
                "features": meta["features"], "code": meta["code"],
                "training_sha256": hashlib.sha256(json.dumps(meta["training"], sort_keys=True)
                                                  .encode()).hexdigest(),
                "sha256": digest(src, "sha256"),
                "dvc_lock": {"stage": stage_of(fam, run), "path": src.as_posix(),
                             "md5": digest(src, "md5")}}
            files.append((src, rel))
    manifest = {"protocol": PROTOCOL, "folds": folds, "released": datetime.date.today().isoformat(),
                "files": entries}
    with atomic_dir(out) as tmp:
        for src, rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(LICENCE.format(
            n=len(folds), families=", ".join(f"`{f.name}/` ({f.label}: {f.about})"
                                             for f in registry.FAMILIES.values())))
    size = sum((out / rel).stat().st_size for _, rel in files)
    log.info("released %d model files (%.1f MB) into %s", len(files), size / 1e6, out)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.models, a.out)


if __name__ == "__main__":
    run_cli(main)
