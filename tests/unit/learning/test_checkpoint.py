"""Checkpoints: atomic saves, survival of kill -9, fallback past corrupted files."""
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadRequest
from core.learning.checkpoint import CheckpointStore

REPO = Path(__file__).resolve().parents[3]


def weights_for(round_no, size=1000):
    """Distinct, recognisable weights for each round."""
    return {"layer.weight": np.full((size // 10, 10), round_no, dtype=np.float32),
            "layer.bias": np.arange(10, dtype=np.int64) + round_no}


def assert_weights_of(round_no, weights, size=1000):
    expected = weights_for(round_no, size)
    assert set(weights) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(weights[name], expected[name])
        assert weights[name].dtype == expected[name].dtype


def test_save_then_latest_round_trips_weights_and_meta(tmp_path):
    store = CheckpointStore(tmp_path)
    path = store.save(7, weights_for(7), {"accuracy": 0.91, "clients": ["a", "b"]})
    assert path.exists() and path.suffix == ".safetensors"
    round_no, weights, meta = store.latest()
    assert round_no == 7
    assert_weights_of(7, weights)
    assert meta == {"accuracy": 0.91, "clients": ["a", "b"]}


def test_latest_is_none_for_an_empty_directory(tmp_path):
    assert CheckpointStore(tmp_path / "new").latest() is None


def test_latest_returns_the_highest_round(tmp_path):
    store = CheckpointStore(tmp_path)
    for r in (1, 3, 2):
        store.save(r, weights_for(r), {"r": r})
    round_no, weights, meta = store.latest()
    assert (round_no, meta) == (3, {"r": 3})
    assert_weights_of(3, weights)


def test_non_contiguous_arrays_are_saved_by_value(tmp_path):
    store = CheckpointStore(tmp_path)
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.save(0, {"t": matrix.T}, {})
    np.testing.assert_array_equal(store.latest()[1]["t"], matrix.T)


def test_history_keeps_every_meta_and_only_the_last_k_weight_files(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for r in range(5):
        store.save(r, weights_for(r), {"loss": 1.0 / (r + 1)})
    history = store.history()
    assert [h["round"] for h in history] == [0, 1, 2, 3, 4]
    assert [h["meta"]["loss"] for h in history] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert [h["weights_kept"] for h in history] == [False, False, False, True, True]
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_saving_a_round_again_replaces_it(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(4, weights_for(1), {"v": 1})
    store.save(4, weights_for(4), {"v": 2})
    round_no, weights, meta = store.latest()
    assert (round_no, meta) == (4, {"v": 2})
    assert_weights_of(4, weights)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1


def test_corrupted_newest_weights_fall_back_to_the_previous_round_and_stay_on_disk(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    for r in (1, 2, 3):
        store.save(r, weights_for(r), {"r": r})
    newest = next(tmp_path.glob("round-00000003-*.safetensors"))
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="core.learning.checkpoint"):
        round_no, weights, meta = store.latest()
    assert (round_no, meta) == (2, {"r": 2})
    assert_weights_of(2, weights)
    assert "round 3" in caplog.text and "corrupted" in caplog.text
    assert newest.read_bytes() == bytes(data)


def test_truncated_weights_and_garbled_record_are_skipped(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    for r in (1, 2, 3):
        store.save(r, weights_for(r), {"r": r})
    record = tmp_path / "round-00000003.json"
    record.write_text("{ not json")
    weights_2 = next(tmp_path.glob("round-00000002-*.safetensors"))
    weights_2.write_bytes(weights_2.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="core.learning.checkpoint"):
        round_no, weights, _ = store.latest()
    assert round_no == 1
    assert_weights_of(1, weights)
    assert "round-00000003.json is unreadable" in caplog.text
    assert "round 2" in caplog.text
    assert record.read_text() == "{ not json" and weights_2.stat().st_size == 100


def test_meta_that_is_not_json_is_refused_and_nothing_is_written(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(BadRequest, match="JSON-serializable"):
        store.save(1, weights_for(1), {"clients": {"a", "b"}})
    assert os.listdir(tmp_path) == []


def test_bad_arguments_are_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(BadRequest, match="round number"):
        store.save(-1, weights_for(1), {})
    with pytest.raises(BadRequest, match="numpy array"):
        store.save(1, {"w": [1, 2, 3]}, {})


def test_files_that_are_not_checkpoints_are_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "model.safetensors").write_bytes(b"user data")
    store = CheckpointStore(tmp_path, keep=1)
    for r in range(3):
        store.save(r, weights_for(r), {})
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "model.safetensors").read_bytes() == b"user data"


# -- kill -9 -------------------------------------------------------------------
CRASH_AT_CALL = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    from core.learning.checkpoint import CheckpointStore
    sys.path.insert(0, {tests!r})
    from test_checkpoint import weights_for

    store = CheckpointStore({directory!r})
    store.save(1, weights_for(1, 200_000), {{"r": 1}})
    function, nth = {function!r}, {nth}
    original, calls = getattr(os, function), [0]

    def crash_on_nth(*args):
        calls[0] += 1
        if calls[0] == nth:
            if function == "write":      # half a buffer reaches the file, then death
                original(args[0], bytes(args[1])[: len(args[1]) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args)

    setattr(os, function, crash_on_nth)
    store.save(2, weights_for(2, 200_000), {{"r": 2}})
    print("survived")
""")


# Calls made by save(): write weights, fsync weights, replace weights, fsync dir,
# write record, fsync record, replace record (the commit point), fsync dir.
@pytest.mark.parametrize("function,nth,committed", [
    ("write", 1, False), ("fsync", 1, False), ("replace", 1, False), ("fsync", 2, False),
    ("write", 2, False), ("fsync", 3, False), ("replace", 2, False), ("fsync", 4, True)])
def test_kill_9_at_any_step_of_a_save_leaves_a_loadable_checkpoint(tmp_path, function, nth, committed):
    script = CRASH_AT_CALL.format(repo=str(REPO), tests=str(Path(__file__).parent),
                                  directory=str(tmp_path), function=function, nth=nth)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    round_no, weights, meta = CheckpointStore(tmp_path).latest()
    expected = 2 if committed else 1
    assert (round_no, meta) == (expected, {"r": expected})
    assert_weights_of(expected, weights, 200_000)
    assert not list(tmp_path.glob(".tmp-*")), "stale temp files are cleaned when the store opens"


SAVE_FOREVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    from core.learning.checkpoint import CheckpointStore
    from test_checkpoint import weights_for

    store = CheckpointStore({directory!r}, keep=2)
    found = store.latest()
    start = 0 if found is None else found[0] + 1
    for r in range(start, start + 100_000):
        store.save(r, weights_for(r, 1_000_000), {{"r": r}})
""")


def test_kill_9_while_saving_in_a_loop_leaves_the_last_complete_checkpoint(tmp_path):
    script = SAVE_FOREVER.format(repo=str(REPO), tests=str(Path(__file__).parent), directory=str(tmp_path))
    rng = np.random.default_rng()
    last_seen = -1
    for attempt in range(4):
        child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        # Wait until the child has committed at least two more rounds, then kill
        # it after a random extra moment so the kill lands anywhere in a save.
        while len(list(tmp_path.glob("round-*.json"))) < last_seen + 3:
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "child made no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
        found = CheckpointStore(tmp_path, keep=2).latest()
        assert found is not None
        round_no, weights, meta = found
        assert round_no >= last_seen + 1 and meta == {"r": round_no}
        assert_weights_of(round_no, weights, 1_000_000)
        history = CheckpointStore(tmp_path, keep=2).history()
        assert [h["round"] for h in history] == list(range(round_no + 1))
        last_seen = round_no
