"""Stage corpus: take an external corpus's archive (params.yaml `corpora.<name>`), verify it,
extract its audio and write its table (ser.corpora).

    bin/stage corpus --name tess --out data/corpora/tess --downloads data/downloads

The archive is `$<archive_env>` (e.g. TESS_ARCHIVE) or, when the entry has one, its URL. dvc.yaml
declares these stages before training, so a missing archive stops `dvc repro` in seconds, before
any model trains, with one line naming the variable and how to drop the corpus.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ser import corpora
from ser.errors import SerError, run_cli
from ser.fetch import download, file_hashes
from ser.io import atomic_dir
from ser.params import PARAMS_FILE, Corpus, load_params

log = logging.getLogger("corpus")


def archive_of(name: str, c: Corpus, downloads: Path, params) -> Path:
    """The archive: $<archive_env>, else the URL downloaded, else one line saying what to do."""
    local = os.environ.get(c.archive_env)
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise SerError(f"{c.archive_env}={local}: no such file (corpora.{name})")
    elif c.url:
        d = params.download  # the same retries and limits as RAVDESS's download
        path = download(c.url, downloads / f"{name}.zip", None, retries=d.retries,
                        timeout=d.timeout_s, stall_limit=d.stall_limit_s,
                        total_limit=d.total_limit_s, archive_env=c.archive_env)
    else:
        raise SerError(f"corpora.{name}: set {c.archive_env}=/path/to/archive.zip (no official "
                       f"archive URL: {c.about.split(': ')[0]}), or drop the corpus: remove "
                       f"`{name}` from `corpora` in params.yaml")
    if c.sha256 is not None:
        sha = file_hashes(path)[1]
        if sha != c.sha256:
            raise SerError(f"{path}: sha256 {sha}, expected corpora.{name}.sha256 {c.sha256} "
                           "(another copy? set sha256: null in params.yaml to accept it)")
    return path


RATIO = 20  # audio deflates far less than this (TESS about 1.1x); a zip bomb a thousandfold


def check_size(archive: Path, members: list[zipfile.ZipInfo], out: Path) -> None:
    """Before anything is extracted: the audio's declared size (zipfile reads no more of a member
    than it declares) must be what audio compresses to, and fit on the disk of `out`. With
    sha256: null any archive is taken, so this is what stops a zip bomb filling the disk."""
    total, size = sum(m.file_size for m in members), archive.stat().st_size
    if total > RATIO * size:
        raise SerError(f"{archive}: its audio declares {total / 1e9:.2f} GB in {size / 1e6:.1f} MB, "
                       f"over {RATIO} times its size, which audio never compresses to: refused")
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if total > free:
        raise SerError(f"{archive}: extracting it needs {total / 1e9:.2f} GB, {folder} has "
                       f"{free / 1e9:.2f} GB free: make room and rerun")


def extract(archive: Path, name: str, c: Corpus, out: Path) -> int:
    """Every audio member to `out`/audio (atomically, with the table); returns the clip count."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()
                       and PurePosixPath(m.filename).suffix.lower() in corpora.AUDIO_SUFFIXES]
            for m in members:
                p = PurePosixPath(m.filename)
                if p.is_absolute() or ".." in p.parts:
                    raise SerError(f"{archive}: unsafe path in archive: {m.filename!r}")
            df = corpora.table([m.filename for m in members], name, c)
            check_size(archive, members, out)
            with atomic_dir(out) as tmp:
                _extract(zf, members, df, name, tmp)
    except (zipfile.BadZipFile, EOFError) as err:
        raise SerError(f"{archive}: not a readable zip archive ({err})") from None
    kept = (df["label"] != "").sum()
    log.info("%s: %d clips of %d speakers, %d kept (%s dropped by the mapping)", name, len(df),
             df["speaker"].nunique(), kept, len(df) - kept)
    return len(df)


def _extract(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], df, name: str, tmp: Path) -> None:
    """The members to tmp/audio, 1 MB at a time, and the table beside them."""
    for m in tqdm(members, desc=f"extract {name}", unit="file"):
        dest = tmp / "audio" / m.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(m) as src, open(dest, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    df.assign(path=["audio/" + p for p in df["path"]]).to_csv(tmp / "manifest.csv", index=False)


def run(params_path: Path, name: str, out: Path, downloads: Path) -> None:
    params = load_params(params_path)
    corpora.check_mappings(params, str(params_path))
    if name not in params.corpora:
        raise SerError(f"corpora.{name}: not in params.yaml")
    c = params.corpora[name]
    archive = archive_of(name, c, downloads, params)
    log.info("%s: archive %s", name, archive)
    extract(archive, name, c, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--name", required=True, help="the corpus, a key of params.yaml `corpora`")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--downloads", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.name, a.out, a.downloads)


if __name__ == "__main__":
    run_cli(main)
