"""``maxpo.provenance``, the one reader of machine, versions and git: checked on a scratch git repository."""
from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch

from maxpo import provenance as prov


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout


def test_git_state_follows_commits_and_edits(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("n\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = (tmp_path / ".git" / "HEAD").read_text().split(": ")[1].strip()
    sha = (tmp_path / ".git" / head).read_text().strip()  # the commit as git stored it, not as git printed it
    assert prov.git_state(cwd=tmp_path) == {"commit": sha, "dirty": False}

    (tmp_path / "notes.txt").write_text("changed\n")
    assert prov.git_state(cwd=tmp_path)["dirty"] is True
    assert prov.git_state(["pkg"], cwd=tmp_path)["dirty"] is False  # the change lies outside the paths

    (tmp_path / "pkg" / "new.py").write_text("")
    assert prov.git_state(["pkg"], cwd=tmp_path)["dirty"] is True  # an untracked file counts ...
    assert prov.git_state(["pkg"], untracked=False, cwd=tmp_path)["dirty"] is False  # ... unless asked not to


def test_outside_git_everything_is_unknown(tmp_path: Path) -> None:
    assert prov.git("rev-parse", "HEAD", cwd=tmp_path) is None
    assert prov.git_state(cwd=tmp_path) == {"commit": None, "dirty": None}


def test_machine_and_device_descriptions() -> None:
    info = prov.machine_description()
    assert info["cpu_count"] == os.cpu_count() and info["torch"] == torch.__version__
    assert info["device"] == "cpu" and info["torch_threads"] == torch.get_num_threads()
    line = prov.device_name("cpu")
    assert line.startswith("CPU: ") and f"{os.cpu_count()} cores" in line
    if Path("/proc/cpuinfo").is_file():
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        if names:
            assert prov.cpu_model() == names[0] == info["cpu_model"] and names[0] in line


def test_utc_now_is_now_to_the_second() -> None:
    stamp = datetime.fromisoformat(prov.utc_now())
    assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0) and stamp.microsecond == 0
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=1)
