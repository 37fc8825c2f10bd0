"""Model files: the one writer and reader of every family's trained model.

A model file is a zip archive whose loading runs no code it carries:
- `meta.json`: plain JSON that describes the model: format and version, family, classes, feature
  family and the feature params it was trained on, the payload's constructor arguments, protocol,
  run, fold, training params and code version. Anything reads it without loading the model.
- the payload: `weights.safetensors` (a network's tensors: safetensors holds numbers only) or
  `estimator.skops` (a scikit-learn estimator in skops' format, loaded with an explicit list of
  trusted types: any other type is refused, never built).

Written deterministically (sorted keys, fixed timestamps, skops' member names renumbered), so the
same model gives the same bytes. Files of the formats before this one (pickles: joblib and
torch.save) are refused with one line that names the explicit conversion (ser.apps.convert_models).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from ser.errors import SerError
from ser.io import atomic_path

FORMAT, VERSION = "ser-model", 1
SUFFIX = ".model"
META, WEIGHTS, ESTIMATOR = "meta.json", "weights.safetensors", "estimator.skops"
MAX_META = 1 << 20           # bytes: meta.json is a few kB
MAX_PAYLOAD = 512 << 20      # bytes, uncompressed: the largest payload is a few MB
_EPOCH = (1980, 1, 1, 0, 0, 0)
CONVERT = "python -m ser.apps.convert_models"


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


def _older_format(path: Path, head: bytes) -> str | None:
    """What an older model file is, from its first bytes; None when it is none of them."""
    if head[:1] == b"\x80":
        return "a pickle (joblib)"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                if any(n.endswith("data.pkl") for n in z.namelist()):
                    return "a pickle (torch.save)"
        except zipfile.BadZipFile:
            return None
    return None


def read(path: str | Path, member: str | None = None,
         family: str | None = None) -> tuple[dict, bytes | None]:
    """(meta, the named payload member's bytes, or None when member is None), checked: one line
    naming the file for anything that is not a model file of this format (and, given `family`,
    of that family)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise SerError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise SerError(f"{path}: is a directory, not a model file") from None
    except OSError as err:
        raise SerError(f"{path}: cannot read ({err.strerror})") from None
    if not head:
        raise SerError(f"{path}: empty file, not a model file")
    older = _older_format(path, head)
    if older:
        raise SerError(f"{path}: {older}, the format before this version, which runs code when "
                       f"loaded: refused; convert a file you trust with `{CONVERT} {path}`")
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(_member(z, META, MAX_META))
            data = _member(z, member, MAX_PAYLOAD) if member else None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as err:
        raise SerError(f"{path}: not a model file ({str(err).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SerError(f"{path}: not a model file of this project (no '{FORMAT}' meta.json)")
    if meta.get("version") != VERSION:
        raise SerError(f"{path}: model file format version {meta.get('version')!r}, this version "
                       f"reads {VERSION}: rerun the stage that writes it")
    if family is not None and meta.get("family") != family:
        raise SerError(f"{path}: a model of family {meta.get('family')!r}, not {family!r}")
    return meta, data


def _member(z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise zipfile.BadZipFile(f"no {name} in the archive") from None
    if info.file_size > limit:
        raise zipfile.BadZipFile(f"{name} declares {info.file_size} bytes, over {limit}")
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise zipfile.BadZipFile(f"{name} holds more than {limit} bytes")
    return data


# ---------------------------------------------------------------- payloads

def tensors_bytes(state: dict) -> bytes:
    """A network's state_dict as safetensors bytes (contiguous copies: the layout is the reader's)."""
    from safetensors.torch import save
    return save({k: v.detach().contiguous() for k, v in state.items()})


def tensors_from(data: bytes, path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise SerError(f"{path}: unreadable weights ({str(err).splitlines()[0]})") from None


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


def estimator_from(data: bytes, trusted: list[str], path: Path) -> object:
    """The estimator, built only from the types listed in `trusted` (and skops' own safe ones)."""
    import skops.io as sio
    try:
        untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in trusted]
        if untrusted:
            raise SerError(f"{path}: holds types this project does not trust ({', '.join(untrusted[:3])}): "
                           "refused")
        return sio.loads(data, trusted=trusted)
    except SerError:
        raise
    except Exception as err:  # noqa: BLE001 - skops raises many kinds; any means unreadable
        raise SerError(f"{path}: unreadable estimator ({str(err).splitlines()[0]})") from None
