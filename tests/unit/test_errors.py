"""Typed errors live in core/errors.py; one map words them for every surface."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core import errors
from core.app.control import http_status
from core.errors import CoveyError, from_code, human

CORE = Path(__file__).resolve().parents[2] / "core"


def _covey_errors() -> set[str]:
    found, todo = set(), [CoveyError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def test_every_error_class_in_core_lives_in_core_errors():
    typed = {name for name in _covey_errors() if getattr(errors, name, None) is not None}
    misplaced, exceptions = [], []
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE).as_posix()
        if rel == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {_base_name(b) for b in node.bases}
            if bases & typed:
                misplaced.append(f"{rel}: {node.name}")
            elif any(b.endswith(("Error", "Exception")) for b in bases):
                exceptions.append((rel, node.name))
    assert misplaced == [], "typed errors belong in core/errors.py"
    # An exception that never leaves its module (raised and caught inside it) may stay there,
    # and says so with a leading underscore.
    public = [f"{rel}: {name}" for rel, name in exceptions if not name.startswith("_")]
    assert public == [], "an exception outside core/errors.py must be a private helper"


def test_the_moved_errors_keep_their_codes_and_the_modules_that_raise_them_still_name_them():
    from core.learning import secagg, tensors
    from core.net import discovery, tor
    from core import signed, store
    assert (tensors.UpdateRejected, secagg.CorruptShare, tor.TorError, discovery.ForeignBeacon,
            signed.NotTheSender, store.StoreUnavailable) == (errors.UpdateRejected, errors.CorruptShare,
                                                           errors.TorError, errors.ForeignBeacon,
                                                           errors.NotTheSender, errors.StoreUnavailable)
    codes = {"unknown_task": errors.UnknownTask, "update_rejected": errors.UpdateRejected,
             "secagg_too_few": errors.NotEnoughParticipants, "secagg_refused": errors.UnmaskRefused,
             "secagg_corrupt_share": errors.CorruptShare, "tor_error": errors.TorError,
             "fingerprint_mismatch": errors.ForeignBeacon, "too_many_peers": errors.TooManyPeers,
             "store_unavailable": errors.StoreUnavailable}
    for code, cls in codes.items():
        assert cls.code == code and type(from_code(code, "m")) is cls


def test_an_invalid_object_carries_its_reason_and_a_default_sentence():
    exc = errors.UpdateRejected("shape")
    assert exc.reason == "shape" and human(exc) == "The model update was rejected (shape)"
    assert isinstance(exc, errors.Invalid) and exc.code == "update_rejected"


@pytest.mark.parametrize("exc,status", [
    (errors.BadRequest("x"), 400), (errors.UnknownPeer("x"), 404), (errors.RefusedByPolicy("x"), 403),
    (errors.UnmaskRefused("x"), 403),      # no status of its own: its parent's (refused by policy)
    (errors.KeyMismatch("x"), 502), (errors.CorruptShare("x"), 400), (errors.UnknownTask("x"), 400),
])
def test_the_control_api_status_follows_the_error_type(exc, status):
    assert http_status(exc) == status
