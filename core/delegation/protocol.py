"""What the delegation service says on the wire and shows: message types, states, the JSON form
of signed requests over HTTP, and how each task type's arguments are read from text.

Pure declarations (no I/O, no heavy imports): the desktop's Tasks tab may import this module.

Over a peer link
    ``task.request`` body ``{"request": <sealed envelope>}`` (see ``core.delegation.request``),
    sent only to peers; the executor answers with the ``task.result`` body
    ``{"proof": <DSSE envelope>, "result": <bytes the proof's subject digest covers>}``
    (routed by the node as the request's reply) or a typed error ``{"code", "message"}``.

Over HTTP (``POST /tasks`` on the node's port, for simple clients)
    The header ``X-Covey-Signer: <requester id>`` says who signs, so a node refuses a requester
    its policy does not allow before it reads the body. The body is the JSON form of
    ``{"request": <sealed envelope>}``: the envelope map as it was signed, with every bytes
    value (the nonce, the signature, a bytes argument such as model weights) written as
    ``{"$base64": "<standard base64>"}``. The signature covers the canonical msgpack of the
    decoded map (``core.signed``), so numbers must round-trip exactly (``ts`` and ``deadline``
    are floats). The answer is ``200 {"task", "executor", "proof", "result": {"$base64"}}``
    or ``{"error": {"code", "message"}}`` with the status of :data:`HTTP_STATUS`.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

REQUEST = "task.request"
RESULT = "task.result"
HTTP_PATH = "/tasks"
SIGNER_HEADER = "X-Covey-Signer"
REQUIRED_TIER = "core"                 # the only tier that may delegate tasks (DESIGN section 2)

# Roles and states of a row in the tasks table (what `covey tasks list` and the tab show).
SENT, SERVED = "sent", "served"
STATES = ("sent", "done", "failed", "refused", "rejected")
# sent: waiting for the executor; done: verified proof, task ok; failed: verified proof of a
# task that failed (time, memory, error); refused: the executor (or we) refused before it ran;
# rejected: the executor's answer did not verify (signature, request digest, result digest, size).

HTTP_STATUS = {"bad_request": 400, "malformed": 400, "unknown_task_type": 400, "too_large": 413,
               "invalid_signature": 401, "refused_by_policy": 403, "banned": 403, "unknown_peer": 403,
               "replay": 409, "stale": 409, "rate_limited": 429, "executor_busy": 503,
               "task_timeout": 504, "timeout": 504}

B64 = "$base64"


def to_json_form(value: Any) -> Any:
    """``value`` with every bytes value replaced by ``{"$base64": text}`` (for JSON)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {B64: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k: to_json_form(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_form(v) for v in value]
    return value


def from_json_form(value: Any, depth: int = 0) -> Any:
    """The inverse of :func:`to_json_form`; ValueError on a bad ``$base64`` or a ``$`` key."""
    if depth > 32:
        raise ValueError("nested deeper than 32 levels")
    if isinstance(value, dict):
        if B64 in value:
            text = value[B64]
            if len(value) != 1 or not isinstance(text, str):
                raise ValueError(f'a bytes value is written {{"{B64}": "<base64>"}} and nothing else')
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("a $base64 value is not valid base64") from None
        if any(isinstance(k, str) and k.startswith("$") for k in value):
            raise ValueError("map keys starting with $ are reserved")
        return {k: from_json_form(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_form(v, depth + 1) for v in value]
    return value


# -- task arguments as a person types them ---------------------------------------------
@dataclass(frozen=True)
class ArgSpec:
    """One argument of a task type: how `covey tasks run ... KEY=VALUE` and the tab's form read it.

    ``kind``: text, int, float, floats (comma-separated), column (an index or ``label``),
    choice, dataset (a name from the executor's config) or file (bytes read from a local file
    by this node: ``KEY=@/absolute/path``). The task type's own check stays the authority on
    what is valid; ``lo``/``hi`` only bound the form's fields.
    """
    name: str
    kind: str
    help: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None


ARGS: dict[str, tuple[ArgSpec, ...]] = {
    "echo": (ArgSpec("text", "text", "the text to send back", required=True),),
    "dataset.digest": (ArgSpec("dataset", "dataset", "a dataset named in the executor's config",
                               required=True),),
    "dataset.stats": (
        ArgSpec("dataset", "dataset", "a dataset named in the executor's config", required=True),
        ArgSpec("column", "column", "a feature index, or label", required=True, lo=0, hi=1_000_000),
        ArgSpec("quantiles", "floats", "quantiles in [0, 1], comma-separated", [0.25, 0.5, 0.75]),
        ArgSpec("bins", "int", "histogram bins", 10, lo=1, hi=256),
        ArgSpec("noise_sigma", "float", "Gaussian noise for privacy (needs range)", 0.0, lo=0, hi=1e9),
        ArgSpec("range", "floats", "histogram range LOW,HIGH", None),
    ),
    "model.evaluate": (
        ArgSpec("dataset", "dataset", "a dataset named in the executor's config", required=True),
        ArgSpec("weights", "file", "model weights (a .safetensors file)", required=True),
        ArgSpec("model", "choice", "model architecture", "mlp", choices=("mlp", "cnn")),
        ArgSpec("hidden", "int", "hidden units of the mlp", 32, lo=1, hi=4096),
        ArgSpec("split", "choice", "rows to evaluate on", "test", choices=("test", "all")),
    ),
    "bench.probe": (
        ArgSpec("ms", "int", "milliseconds of matrix multiplications", 200, lo=1, hi=5000),
        ArgSpec("n", "int", "matrix size", 128, lo=8, hi=512),
    ),
}


def arg_specs(type_name: str) -> tuple[ArgSpec, ...]:
    """The argument declarations of ``type_name`` (empty for a type this module does not list)."""
    return ARGS.get(type_name, ())


def parse_pairs(type_name: str, pairs: list[str]) -> tuple[dict, dict[str, str]]:
    """``["key=value", ...]`` -> (arguments, files): typed values, and ``{name: path}`` for file
    arguments (``key=@/absolute/path``, read by the node). ValueError says what is wrong."""
    specs = {s.name: s for s in arg_specs(type_name)}
    args: dict[str, Any] = {}
    files: dict[str, str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"argument {pair!r:.60} must be KEY=VALUE")
        if key in args or key in files:
            raise ValueError(f"argument {key!r} is given twice")
        spec = specs.get(key)
        if spec is not None and spec.kind == "file":
            if not text.startswith("@"):
                raise ValueError(f"{key}: give a file as {key}=@/absolute/path")
            files[key] = text[1:]
        else:
            args[key] = parse_value(spec, key, text)
    return args, files


def parse_value(spec: ArgSpec | None, key: str, text: str) -> Any:
    """One argument from text, by its declared kind (an undeclared key stays text: the task
    type's check then names it as unknown)."""
    kind = spec.kind if spec is not None else "text"
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "floats":
            return [float(part) for part in text.split(",") if part.strip()]
        if kind == "column":
            return "label" if text.strip() == "label" else int(text)
    except ValueError:
        raise ValueError(f"{key}: {text!r:.40} is not {_KIND_TEXT[kind]}") from None
    return text


_KIND_TEXT = {"int": "an integer", "float": "a number", "floats": "a comma-separated list of numbers",
              "column": "a column index or label"}
