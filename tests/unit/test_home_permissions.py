"""A node's home is private: directories 0700, the database, its WAL and config.json 0600,
and config.json is written crash-safe (issue 6, 12d and 12e)."""
from __future__ import annotations

import os
import stat

import pytest

from core import files
from core.app.cli import init
from core.config import save_settings
from core.learning.checkpoint import CheckpointStore
from core.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    old = os.umask(0o022)   # what users have: new files 0644, directories 0755
    yield
    os.umask(old)


def test_init_makes_a_private_home(tmp_path):
    home = tmp_path / "a" / "home"
    init(home, "alice", None)
    assert mode(home) == 0o700 and mode(home.parent) == 0o700   # parents it created too


def test_the_database_and_its_wal_are_0600_and_an_old_0755_home_is_fixed(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    with Store(home / "covey.db") as store:
        store.set_setting("x", 1)          # a write: the WAL exists now
        for name in ("covey.db", "covey.db-wal", "covey.db-shm"):
            assert mode(home / name) == 0o600, name
    assert mode(home) == 0o700


def test_files_of_an_older_home_are_restricted_when_opened(tmp_path):
    home = tmp_path / "home"
    with Store(home / "covey.db") as store:
        store.set_setting("x", 1)
    os.chmod(home / "covey.db", 0o644)
    with Store(home / "covey.db"):
        assert mode(home / "covey.db") == 0o600


def test_config_json_is_0600(tmp_path):
    home = tmp_path / "home"
    save_settings(home, {"name": "alice"})
    assert mode(home / "config.json") == 0o600 and mode(home) == 0o700


def test_checkpoint_directories_are_0700(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    CheckpointStore(home / "ml" / "task1")
    assert mode(home / "ml") == 0o700 and mode(home / "ml" / "task1") == 0o700


def test_config_json_is_fsynced_file_and_directory(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    synced = []
    real = os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        real(fd)

    monkeypatch.setattr(files.os, "fsync", record)
    save_settings(home, {"name": "alice"})
    save_settings(home, {"mode": "none"})
    assert any(str(p).startswith(str(home / ".config.json")) for p in synced)   # the temp file
    assert str(home) in synced                                                    # the rename
    assert not list(home.glob("*.tmp")) and not list(home.glob(".*.tmp"))
