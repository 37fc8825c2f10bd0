"""Stage download: fetch (or take a local copy of) the RAVDESS speech archive, verify, extract.

    bin/stage download --out data/raw/ravdess --downloads data/downloads

The default source is the official Zenodo archive (url and md5 in params.yaml). Set
RAVDESS_ARCHIVE=/path/to/archive.zip to use a local copy instead: the original zip (checked
against the md5) or the lossless FLAC mirror (checked against its sha256). A download resumes
where an interrupted one stopped (HTTP Range) and retries with back-off; extraction goes to a
temporary folder renamed into place, so an interrupted run leaves no half-extracted corpus.
"""

from __future__ import annotations

import argparse
import logging
import os
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ser.errors import SerError, run_cli
from ser.fetch import download, file_hashes
from ser.io import atomic_dir
from ser.labels import AUDIO_SUFFIXES, expected_stems, parse_name
from ser.params import PARAMS_FILE, Download, load_params

log = logging.getLogger("download")
ARCHIVE_ENV = "RAVDESS_ARCHIVE"
_CHUNK = 1 << 20  # extraction


def verify_archive(path: Path, p: Download) -> str:
    """Check a local archive against the original's md5 or the FLAC mirror's sha256."""
    md5, sha = file_hashes(path)
    if md5 == p.md5:
        return "original"
    if sha == p.flac_mirror_sha256:
        return "flac mirror"
    raise SerError(f"{path}: bad checksum (md5 {md5}, sha256 {sha}); expected md5 {p.md5} "
                   f"or the FLAC mirror's sha256 {p.flac_mirror_sha256} (truncated or wrong file?)")


def _member_target(name: str, actors: set[int]) -> PurePosixPath | None:
    """Where an archive member goes inside the corpus, None to skip it; errors on strays."""
    path = PurePosixPath(name)
    if name.endswith("/") or path.name in (".DS_Store",) or path.parts[0] == "__MACOSX":
        return None
    if path.is_absolute() or ".." in path.parts:
        raise SerError(f"unsafe path in archive: {name!r}")
    parts = path.parts[-2:]
    if len(parts) != 2 or not parts[0].startswith("Actor_") or path.suffix.lower() not in AUDIO_SUFFIXES:
        raise SerError(f"unexpected file in archive: {name!r} (expected Actor_NN/<clip>.wav or .flac)")
    info = parse_name(path.stem)
    if parts[0] != f"Actor_{info.actor:02d}":
        raise SerError(f"unexpected file in archive: {name!r} (actor {info.actor} in {parts[0]})")
    return PurePosixPath(*parts) if info.actor in actors else None


def extract(archive: Path, out: Path, actors: list[int]) -> int:
    """Extract the wanted actors' clips into `out` (atomically); return the number of files."""
    wanted = set(actors)
    try:
        with zipfile.ZipFile(archive) as zf, atomic_dir(out) as tmp:
            members = [(m, t) for m in zf.infolist() if (t := _member_target(m.filename, wanted))]
            for m, target in tqdm(members, desc="extract", unit="file"):
                dest = tmp / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(dest, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
            validate_corpus(tmp, actors)
    except (zipfile.BadZipFile, EOFError) as err:
        raise SerError(f"{archive}: not a readable zip archive ({err}); truncated?") from None
    return len(members)


def validate_corpus(root: Path, actors: list[int]) -> None:
    """The corpus holds exactly the expected clips of the expected actors, and nothing else."""
    found: dict[int, set[str]] = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root)
        if len(rel.parts) != 2 or f.suffix.lower() not in AUDIO_SUFFIXES:
            raise SerError(f"unexpected file in corpus: {rel}")
        info = parse_name(f.stem)
        if rel.parts[0] != f"Actor_{info.actor:02d}":
            raise SerError(f"unexpected file in corpus: {rel} (actor {info.actor} in {rel.parts[0]})")
        found.setdefault(info.actor, set()).add(f.stem)
    for actor in actors:
        if actor not in found:
            raise SerError(f"corpus is missing actor {actor:02d} (Actor_{actor:02d}/)")
        missing = sorted(expected_stems(actor) - found[actor])
        if missing:
            raise SerError(f"corpus is missing {len(missing)} clips of actor {actor:02d}, "
                           f"e.g. {missing[0]}")
    extra = sorted(set(found) - set(actors))
    if extra:
        raise SerError(f"corpus has unexpected actor {extra[0]:02d}")


def run(params_path: Path, out: Path, downloads: Path) -> None:
    p = load_params(params_path).download
    local = os.environ.get(ARCHIVE_ENV)
    if local is not None:
        if not local.strip():
            raise SerError(f"{ARCHIVE_ENV} is set but empty: unset it to download from {p.url}, "
                           "or give the archive's path")
        archive = Path(local).expanduser()
        if archive.is_dir():
            raise SerError(f"{ARCHIVE_ENV}={local}: is a directory; give the archive (.zip) itself")
        if not archive.is_file():
            raise SerError(f"{ARCHIVE_ENV}={local}: no such file")
        log.info("using local archive %s (%s)", archive, verify_archive(archive, p))
    else:
        archive = download(p.url, downloads / PurePosixPath(p.url).name, p.md5,
                           retries=p.retries, timeout=p.timeout_s, stall_limit=p.stall_limit_s,
                           total_limit=p.total_limit_s)
    n = extract(archive, out, p.actor_ids())
    log.info("extracted and validated %d clips of %d actors into %s", n, len(p.actor_ids()), out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--out", type=Path, required=True, help="corpus folder to create")
    ap.add_argument("--downloads", type=Path, required=True, help="where the archive is kept")
    a = ap.parse_args()
    run(a.params, a.out, a.downloads)


if __name__ == "__main__":
    run_cli(main)
