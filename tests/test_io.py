import os
import signal
import subprocess
import sys

import pytest

from ser.io import atomic_dir, atomic_path, write_json


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_next_write_removes_what_a_killed_writer_left(tmp_path):
    (tmp_path / ".logmel.k3j2.tmp").mkdir()
    (tmp_path / ".logmel.k3j2.tmp" / "logmel.npy").write_bytes(b"x" * 100)
    (tmp_path / ".a.json.x1.tmp").write_text("{")
    (tmp_path / ".other.x1.tmp").write_text("not ours")
    with atomic_dir(tmp_path / "logmel") as tmp:
        (tmp / "f").write_text("ok")
    write_json(tmp_path / "a.json", {"k": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.x1.tmp", "a.json", "logmel"]


def test_sigkill_mid_write_then_rerun(tmp_path):
    """A process killed inside atomic_dir leaves its temporary folder; the next run removes it."""
    code = ("import sys, time; from pathlib import Path; from ser.io import atomic_dir\n"
            "with atomic_dir(Path(sys.argv[1])) as t:\n"
            "    (t / 'part').write_text('x'); print('writing', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out")], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "writing"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert [q.name for q in tmp_path.iterdir() if q.name.startswith(".out.")]  # left behind
    with atomic_dir(tmp_path / "out") as t:
        (t / "done").write_text("y")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "done").exists()
