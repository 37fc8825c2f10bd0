"""Reading model files (ser.modelfile's format) safely: the one reader of every family's file.

`read` checks the container and returns its meta and one payload member, within size limits;
`tensors_from` and `estimator_from` turn a payload into a network's tensors (safetensors: numbers
only) or a scikit-learn estimator (skops, built only from an explicit list of trusted types).
Loading runs no code a file carries. Files of the formats before this one (pickles: joblib and
torch.save) are refused with one line that names the explicit conversion (ser.apps.convert_models).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from ser.errors import SerError
from ser.modelfile import FORMAT, META, VERSION

MAX_META = 1 << 20           # bytes: meta.json is a few kB
MAX_PAYLOAD = 512 << 20      # bytes, uncompressed: the largest payload is a few MB
MAX_MEMBERS = 4096           # entries of an archive (an SVM's skops payload holds about 40)
CONVERT = "python -m ser.apps.convert_models --trust --out DIR"


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


def read(path: str | Path, member: str | None = None, family: str | None = None,
         check: Callable[[dict], None] | None = None) -> tuple[dict, bytes | None]:
    """(meta, the named payload member's bytes, or None when member is None), checked: one line
    naming the file for anything that is not a model file of this format (and, given `family`,
    of that family). `check(meta)` runs before the payload is read: the caller's checks of the
    meta (its place, its sizes), made before anything is decompressed or built."""
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
            _count(z)
            meta = _meta(path, _member(z, META, MAX_META), family)
            if check is not None:
                check(meta)
            data = _member(z, member, MAX_PAYLOAD) if member else None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as err:
        raise SerError(f"{path}: not a model file ({str(err).splitlines()[0]})") from None
    return meta, data


def _meta(path: Path, raw: bytes, family: str | None) -> dict:
    meta = json.loads(raw)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SerError(f"{path}: not a model file of this project (no '{FORMAT}' meta.json)")
    if meta.get("version") != VERSION:
        raise SerError(f"{path}: model file format version {meta.get('version')!r}, this version "
                       f"reads {VERSION}: rerun the stage that writes it")
    if family is not None and meta.get("family") != family:
        raise SerError(f"{path}: a model of family {meta.get('family')!r}, not {family!r}")
    return meta


def _count(z: zipfile.ZipFile) -> None:
    """An archive's entries and their declared sizes within the limits (zipfile reads no more
    of an entry than it declares), before any is decompressed."""
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise zipfile.BadZipFile(f"{len(infos)} entries, over {MAX_MEMBERS}")
    total = sum(i.file_size for i in infos)
    if total > MAX_PAYLOAD + MAX_META:
        raise zipfile.BadZipFile(f"its entries declare {total} bytes, over {MAX_PAYLOAD + MAX_META}")


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


def tensors_from(data: bytes, path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise SerError(f"{path}: unreadable weights ({str(err).splitlines()[0]})") from None


def estimator_from(data: bytes, trusted: list[str], path: Path) -> object:
    """The estimator, built only from the types listed in `trusted` (and skops' own safe ones)."""
    import skops.io as sio
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:  # skops' own archive: bounded as the outer one
            _count(z)
    except zipfile.BadZipFile as err:
        raise SerError(f"{path}: unreadable estimator ({str(err).splitlines()[0]})") from None
    from skops.io.exceptions import UntrustedTypesFoundException
    try:
        return sio.loads(data, trusted=trusted)  # audits every type before it builds anything
    except UntrustedTypesFoundException:  # named (a second reading, on this path only)
        untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in trusted]
        raise SerError(f"{path}: holds types this project does not trust ({', '.join(untrusted[:3])}): "
                       "refused") from None
    except Exception as err:  # noqa: BLE001 - skops raises many kinds; any means unreadable
        raise SerError(f"{path}: unreadable estimator ({str(err).splitlines()[0]})") from None
