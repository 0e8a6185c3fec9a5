"""Crash-safe checkpoints of the global model, one per completed round.

Layout of the directory (nothing else in it is ever touched)::

    round-00000042-<sha256[:16]>.safetensors   weights (safetensors, never pickle)
    round-00000042.json                        record: round, weights file name, sha256, meta

Saving writes the weights file, then the JSON record, each through a temp
file that is fsynced and moved into place with ``os.replace``, and fsyncs the
directory. The record is the commit point: it names the weights file and its
SHA-256, so a ``kill -9`` at any moment leaves every earlier checkpoint
intact and the new one either absent or complete. Weights files carry their
digest in the name, so saving a round again never overwrites the file the
current record points to.

:meth:`CheckpointStore.latest` walks back from the newest record and returns
the first checkpoint whose weights verify; a corrupted or missing file is
logged and skipped, never deleted. Only the newest ``keep`` weights files are
kept; every record (the round's meta: metrics, task, ...) is kept forever and
listed by :meth:`CheckpointStore.history`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from core.errors import BadRequest
from core.files import private_dir, write_atomic

log = logging.getLogger(__name__)

_RECORD = re.compile(r"^round-(\d{8})\.json$")
_WEIGHTS = re.compile(r"^round-(\d{8})-[0-9a-f]{16}\.safetensors$")
_TEMP = re.compile(r"^\.round-[^/]*\.(\d+)\.[0-9a-f]{8}\.tmp$")  # core.files.write_atomic temp names
_MAX_ROUND = 10**8 - 1


class CheckpointStore:
    """Checkpoints of one training task in ``directory`` (created if missing)."""

    def __init__(self, directory: Path, keep: int = 3):
        if keep < 1:
            raise BadRequest("keep at least one weights file")
        self.directory = Path(directory)
        self.keep = keep
        private_dir(self.directory)
        self._remove_stale_temp_files()

    def save(self, round_no: int, weights: dict[str, np.ndarray], meta: dict) -> Path:
        """Write round ``round_no`` atomically; returns the weights file's path."""
        if not isinstance(round_no, int) or not 0 <= round_no <= _MAX_ROUND:
            raise BadRequest(f"round number must be an integer in 0..{_MAX_ROUND}")
        data = _serialize(weights)
        digest = hashlib.sha256(data).hexdigest()
        weights_name = f"round-{round_no:08d}-{digest[:16]}.safetensors"
        record = {"round": round_no, "weights": weights_name, "sha256": digest,
                  "saved_at": time.time(), "meta": meta}
        try:
            record_bytes = json.dumps(record, sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"checkpoint meta must be JSON-serializable: {exc}") from exc
        previous = self._read_record(round_no) if self._record_path(round_no).exists() else None
        self._write_atomic(weights_name, data)
        self._write_atomic(self._record_path(round_no).name, record_bytes)
        if previous and previous.get("weights") != weights_name:
            self._remove_weights(previous.get("weights"))
        self._prune()
        return self.directory / weights_name

    def latest(self) -> tuple[int, dict[str, np.ndarray], dict] | None:
        """``(round, weights, meta)`` of the newest checkpoint that verifies, or None if there is none."""
        for round_no in reversed(self._rounds()):
            record = self._read_record(round_no)
            if record is None:
                continue
            weights = self._load_weights(record)
            if weights is not None:
                return round_no, weights, record["meta"]
        return None

    def history(self) -> list[dict]:
        """Every recorded round, oldest first: ``{"round", "saved_at", "weights_kept", "meta"}``."""
        entries = []
        for round_no in self._rounds():
            record = self._read_record(round_no)
            if record is not None:
                entries.append({"round": round_no, "saved_at": record["saved_at"],
                                "weights_kept": (self.directory / record["weights"]).exists(),
                                "meta": record["meta"]})
        return entries

    # -- reading
    def _rounds(self) -> list[int]:
        return sorted(int(m.group(1)) for m in map(_RECORD.match, os.listdir(self.directory)) if m)

    def _record_path(self, round_no: int) -> Path:
        return self.directory / f"round-{round_no:08d}.json"

    def _read_record(self, round_no: int) -> dict | None:
        path = self._record_path(round_no)
        try:
            record = json.loads(path.read_bytes())
            if not (isinstance(record, dict) and record.get("round") == round_no
                    and isinstance(record.get("weights"), str) and _WEIGHTS.match(record["weights"])
                    and isinstance(record.get("sha256"), str) and "meta" in record
                    and isinstance(record.get("saved_at"), (int, float))):
                raise ValueError("fields missing or wrong")
        except (OSError, ValueError) as exc:
            log.warning("checkpoint record %s is unreadable (%s); skipping it", path, exc)
            return None
        return record

    def _load_weights(self, record: dict) -> dict[str, np.ndarray] | None:
        path = self.directory / record["weights"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            log.warning("checkpoint of round %d: weights file %s is missing; using an older one",
                        record["round"], path)
            return None
        except OSError as exc:
            log.warning("checkpoint of round %d: cannot read %s (%s); using an older one",
                        record["round"], path, exc)
            return None
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            log.warning("checkpoint of round %d: %s is corrupted (checksum mismatch); "
                        "left in place, using an older one", record["round"], path)
            return None
        try:
            return load_safetensors(data)
        except SafetensorError as exc:
            log.warning("checkpoint of round %d: %s is not valid safetensors (%s); "
                        "left in place, using an older one", record["round"], path, exc)
            return None

    # -- writing
    def _write_atomic(self, name: str, data: bytes) -> None:
        write_atomic(self.directory / name, data, 0o600)

    def _prune(self) -> None:
        """Remove weights files beyond the newest ``keep`` rounds (records stay)."""
        # Only rounds that still have a weights file matter: reading every record
        # on every save would grow with the length of the run.
        with_weights = sorted({int(m.group(1)) for m in map(_WEIGHTS.match, os.listdir(self.directory)) if m})
        referenced = {}
        for round_no in with_weights:
            record = self._read_record(round_no) if self._record_path(round_no).exists() else None
            if record is not None:
                referenced[round_no] = record["weights"]
        for round_no in sorted(referenced)[:-self.keep]:
            self._remove_weights(referenced[round_no])
        # Weights no record names (a save killed between the two writes) are ours too.
        named = set(referenced.values())
        newest = max(referenced, default=-1)
        for name in os.listdir(self.directory):
            match = _WEIGHTS.match(name)
            if match and name not in named and int(match.group(1)) < newest:
                self._remove_weights(name)

    def _remove_weights(self, name: str | None) -> None:
        if name and _WEIGHTS.match(name):
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                log.debug("weights file %s was already gone", name)

    def _remove_stale_temp_files(self) -> None:
        for name in os.listdir(self.directory):
            match = _TEMP.match(name)
            if match and not _process_alive(int(match.group(1))):
                log.info("removing %s, left by an interrupted checkpoint write", name)
                (self.directory / name).unlink(missing_ok=True)


def _serialize(weights: dict[str, np.ndarray]) -> bytes:
    if not isinstance(weights, dict) or not weights:
        raise BadRequest("weights must be a non-empty map of name to array")
    tensors = {}
    for name, array in weights.items():
        if not isinstance(name, str) or not isinstance(array, np.ndarray):
            raise BadRequest(f"weight {name!r} must be a numpy array under a string name")
        tensors[name] = np.ascontiguousarray(array)
    return save_safetensors(tensors)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True      # someone else's process: leave its files alone
    return True
