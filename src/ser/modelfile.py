"""Model files: the format of every family's trained model, and its one writer (the training
stages'; ser.modelread reads them).

A model file is a zip archive whose loading runs no code it carries:
- `meta.json`: plain JSON that describes the model: format and version, family, classes, feature
  family and the feature params it was trained on, the payload's constructor arguments, protocol,
  run, fold, training params and code version. Anything reads it without loading the model.
- the payload: `weights.safetensors` (a network's tensors: safetensors holds numbers only) or
  `estimator.skops` (a scikit-learn estimator in skops' format, loaded with an explicit list of
  trusted types: any other type is refused, never built).

Written deterministically (sorted keys, fixed timestamps, skops' member names renumbered), so the
same model gives the same bytes.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from ser.io import atomic_path

FORMAT, VERSION = "ser-model", 1
SUFFIX = ".model"
META, WEIGHTS, ESTIMATOR = "meta.json", "weights.safetensors", "estimator.skops"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, members[name], compresslevel=9)
    return buf.getvalue()


def write(path: str | Path, meta: dict, payload: dict[str, bytes]) -> None:
    """Write a model file atomically: meta (plain JSON values) and its payload members."""
    head = {"format": FORMAT, "version": VERSION, **meta}
    members = {META: (json.dumps(head, indent=1, sort_keys=True) + "\n").encode(), **payload}
    with atomic_path(path) as tmp:
        tmp.write_bytes(_zip(members))


# ---------------------------------------------------------------- payloads

def tensors_bytes(state: dict) -> bytes:
    """A network's state_dict as safetensors bytes (contiguous copies: the layout is the reader's)."""
    from safetensors.torch import save
    return save({k: v.detach().contiguous() for k, v in state.items()})


_SKOPS_NAME = re.compile(r"^\d+\.npy$")


def estimator_bytes(estimator: object) -> bytes:
    """A scikit-learn estimator as skops bytes, made deterministic: skops names its arrays and
    memo entries after object ids and stamps the time; here both are numbered in schema order
    (each the same way wherever it recurs) at a fixed time."""
    import skops.io as sio
    raw = zipfile.ZipFile(io.BytesIO(sio.dumps(estimator)))
    members = {i.filename: raw.read(i) for i in raw.infolist()}
    schema = members.pop("schema.json").decode()
    names = [n for n in members if _SKOPS_NAME.match(n)]
    names.sort(key=lambda n: schema.find(f'"{n}"'))
    rename = {n: f"a{k:04d}.npy" for k, n in enumerate(names)}
    schema = re.sub(r'"(\d+\.npy)"', lambda m: f'"{rename.get(m.group(1), m.group(1))}"', schema)
    ids: dict[str, int] = {}
    schema = re.sub(r'"__id__": (\d+)',
                    lambda m: f'"__id__": {ids.setdefault(m.group(1), len(ids) + 1)}', schema)
    out = {rename.get(n, n): b for n, b in members.items()}
    out["schema.json"] = schema.encode()
    return _zip(out)
