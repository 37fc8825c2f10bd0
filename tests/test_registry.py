"""The registry of model families against dvc.yaml and params.yaml: every family has its
training stage writing its model files and predictions, its feature family has a stage and a
params section, report.compare names registered families with the headline first."""

from pathlib import Path

import yaml

from ser import inference, registry
from ser.params import load_params
from ser.stages.params import check_families

ROOT = Path(__file__).resolve().parents[1]


def generated_stages() -> dict[str, dict]:
    """dvc.yaml's stages with foreach/matrix expanded, as `dvc stage list` names them."""
    import subprocess
    import sys
    out = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list", "--names-only"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return set(out)


def test_every_family_has_its_stage_outputs_and_features():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    runs = params["folds"]["runs"]
    names = generated_stages()
    for fam in registry.FAMILIES.values():
        assert fam.stage in dvc, fam.name
        st = dvc[fam.stage].get("do", dvc[fam.stage])
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in st["outs"]]
        assert any(o.startswith(f"models/{'svm_${item.features}' if fam.stage == 'train_svm' else fam.name}/")
                   for o in outs), outs
        assert any(o.startswith("runs/") for o in outs), outs
        assert f"features_{fam.features}" in params, fam.name
        assert f"features@{fam.features}" in names, fam.name
        for run in runs:  # one training stage per run writes this family's model file
            want = [n for n in names if n.startswith(f"{fam.stage}@") and n.endswith(run)
                    and (fam.stage != "train_svm" or n == f"train_svm@{fam.features}-{run}")]
            assert len(want) == 1, (fam.name, run, want)
        assert fam.stage in inference.READERS, fam.name  # its model files can be read


def test_matrix_of_svm_families_is_the_registry():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    svm = sorted(f.features for f in registry.FAMILIES.values() if f.stage == "train_svm")
    assert sorted(dvc["train_svm"]["matrix"]["features"]) == svm
    assert all(f"svm_{f}" in registry.FAMILIES for f in svm)  # the cmd's --family svm_${features}


def test_compare_names_registered_families_headline_first():
    params = load_params(ROOT / "params.yaml")
    check_families(params, "params.yaml")
    assert params.report.compare[0] == [registry.NETWORK, registry.REFERENCE_SVM]
    assert len({f.color for f in registry.FAMILIES.values()}) == len(registry.FAMILIES)


def test_every_familys_words_for_people_stand_alone():
    """The page shows any subset of families (predict.families: the conditioned ones): a hint
    such as "The same, on the speech cut to its sound" once pointed at a family not shown."""
    plains = [f.plain for f in registry.FAMILIES.values()]
    assert len(set(plains)) == len(plains)
    for fam in registry.FAMILIES.values():
        assert not fam.hint.lower().startswith(("the same", "same ", "as ")), fam.name
        assert fam.hint[0].isupper() and len(fam.hint) <= 100, fam.hint
