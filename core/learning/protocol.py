"""The ml.* messages: task specs and the validation of every body that arrives.

Message types (all bodies are msgpack maps of plain types)::

    ml.invite      C -> W  {"task", "spec"}                      reply {"joined": bool}
    ml.join        W -> C  {"task"}                              reply {"partition": int|None, "spec"}
    ml.round       C -> W  sealed "ml.round" {task, round, attempt, round_id, weights, deadline,
                           n_partitions, weight_cap, spec, assign: {worker: {partition, attack,
                           secagg, aggregator}}}             reply {"ok", "keys"?: sealed "ml.sa.keys"}
                           (one envelope per round, signed once and sent to every worker it
                           assigns; each worker reads its own entry)
    ml.update      W -> C  sealed "ml.update" {task, round, round_id, weights|masked, n_examples,
                           loss}                                 reply {"accepted", "reason"}
    ml.sa.roster   C -> W  {task, round_id, roster, signed}      reply {"blobs"}
    ml.sa.relay    C -> W  {task, round_id, blobs}               reply {"ok"}
    ml.sa.unmask   C -> W  {task, round_id, survivors, dropped}  reply {"b_shares", "s_shares"}
    ml.info        W -> C  {"task"}                              reply: the task's status

Two levels (a task with ``aggregators``; A = a group's aggregator, a CORE peer of C)::

    ml.agg.reach   C -> A  {task, workers: [id]}               reply {"reach": [the workers A is connected
                                                                 to and takes updates from]}
    ml.agg.round   C -> A  sealed "ml.agg.round" {task, round, attempt, round_id, weights, deadline,
                           weight_cap, spec, group: {worker: slot}}  reply {"ok"}
    ml.agg.update  W -> A  the sealed "ml.update" above (the round names A as the worker's
                           aggregator)                           reply {"accepted", "reason"}
    ml.agg.keys    C -> A  {task, round_id, keys: {worker: sealed "ml.sa.keys"}}  reply {"ok"}
                           (secure aggregation: A then runs ml.sa.roster/relay/unmask with its
                           group, as C does one level down, and forwards the unmasked group sum)
    ml.agg.partial A -> C  sealed "ml.agg.partial" {task, round, round_id, vector|None, weight,
                           loss, workers: {worker: {status, n_examples?, train_loss?, norm?,
                           used?, reason?}}}                     reply {"accepted", "reason"}

Everything here is pure (no torch, no I/O) so it is cheap to import and test.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields

from core.errors import BadRequest, MalformedMessage

from .rules import AGGREGATORS, SECURE_AGG_RULES, Rule, rule
from .rules import RULES as RULES  # re-exported: the GUI form reads the rules table from here

TASK_ID = re.compile(r"^[0-9a-f]{16}$")
ROUND_ID_BYTES = 16
MAX_ROUNDS = 10_000
TIERS = ("core", "sandbox")
ATTACKS = ("sign_flip", "noise", "label_flip")
MODELS = ("mlp", "cnn")
SECAGG_MIN_ROSTER = 3
MAX_AGGREGATORS = 64
MAX_GROUP = 10_000   # known participants a worker needs in a secure-aggregation roster


# Why the refused combinations are refused (shown by the CLI and GUI).
SECAGG_AGGREGATOR = ("secure aggregation hides every single update from the coordinator, so it cannot "
                     "run {agg}, which must look at each update; use --aggregator "
                     + " or ".join(SECURE_AGG_RULES) + " with --secure-agg, or drop --secure-agg")
SECAGG_VALIDATION = ("secure aggregation hides every single update from the coordinator, so it cannot "
                     "validate each update on its held-out set; use --validate off with --secure-agg")
ATTACKERS_WITHOUT_ATTACK = "--attackers K needs --attack KIND (sign_flip, noise or label_flip)"
DP_VALIDATION = ("with differential privacy every single update carries noise far larger than its "
                 "signal (only the average is useful), so validating each update would reject honest "
                 "workers; use --validate off with --dp-noise")


@dataclass
class TaskSpec:
    """Everything that defines a training task; the coordinator fills the data shape fields."""
    model: str = "mlp"
    dataset: str = "digits"
    partition: str = "iid"
    rounds: int = 20
    epochs: int = 2
    lr: float = 0.05
    batch: int = 16
    aggregator: str = "fedavg"
    prox_mu: float = 0.0
    byzantine: int | None = None      # f for Krum / trimmed mean (default: attackers or N//5)
    min_clients: int = 2
    deadline: float = 60.0            # seconds a round may take
    seed: int = 0
    dp_noise: float | None = None
    dp_clip: float | None = None
    dp_delta: float = 1e-5
    secure_agg: bool = False
    validate: bool = True             # per-update validation on the coordinator's held-out set
    attack: str | None = None
    attackers: int = 0
    tiers: list[str] = field(default_factory=lambda: list(TIERS))
    clients: int = 0                  # partitions of the simulation (0: the workers invited at start)
    hidden: int = 32
    n_features: int = 0
    n_classes: int = 0
    image_shape: list[int] | None = None
    aggregators: list[str] = field(default_factory=list)  # two levels: the group aggregators (peer ids)

    @classmethod
    def from_dict(cls, data) -> "TaskSpec":
        """Build and validate a spec from a plain map (unknown keys are refused)."""
        if not isinstance(data, dict):
            raise MalformedMessage("a task spec must be a map")
        names = {f.name for f in fields(cls)}
        extra = sorted(str(k) for k in data if k not in names)
        if extra:
            raise MalformedMessage(f"task spec has unknown field(s) {', '.join(extra)}")
        spec = cls(**data)
        spec.check()
        return spec

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def rule(self) -> Rule:
        """The aggregation rule's row of the rules table."""
        return rule(self.aggregator)

    @property
    def dp(self) -> bool:
        return self.dp_noise is not None

    def check(self) -> None:
        """Raise BadRequest on a value or a combination that cannot run, saying why."""
        _typed(self, "model", str, choices=MODELS)
        _typed(self, "dataset", str)
        if not self.dataset or len(self.dataset) > 1024:
            raise BadRequest("dataset must be digits, synthetic or a path to a .csv/.npz file")
        _typed(self, "partition", str)
        from core.learning.data import parse_partition
        if self.partition != "own":
            parse_partition(self.partition)
        _int_in(self, "rounds", 1, MAX_ROUNDS)
        _int_in(self, "epochs", 1, 1000)
        _float_in(self, "lr", 0.0, 10.0, low_open=True)
        _int_in(self, "batch", 1, 65536)
        _typed(self, "aggregator", str, choices=AGGREGATORS)
        _float_in(self, "prox_mu", 0.0, 1e6)
        if self.prox_mu == 0.0:
            self.prox_mu = self.rule.prox_mu
        if self.byzantine is not None:
            _int_in(self, "byzantine", 0, 1000)
        _int_in(self, "min_clients", 1, 10_000)
        _float_in(self, "deadline", 0.0, 86400.0, low_open=True)
        _int_in(self, "seed", 0, 2**31 - 1)
        if (self.dp_noise is None) != (self.dp_clip is None):
            raise BadRequest("differential privacy needs both --dp-noise X and --dp-clip C")
        if self.dp_noise is not None:
            _float_in(self, "dp_noise", 0.0, 1e3, low_open=True)
            _float_in(self, "dp_clip", 0.0, 1e6, low_open=True)
        _float_in(self, "dp_delta", 0.0, 1.0, low_open=True)
        _typed(self, "secure_agg", bool)
        _typed(self, "validate", bool)
        if self.secure_agg and not self.rule.secure_agg:
            raise BadRequest(SECAGG_AGGREGATOR.format(agg=self.aggregator))
        if self.secure_agg and self.validate:
            raise BadRequest(SECAGG_VALIDATION)
        if self.dp and self.validate:
            raise BadRequest(DP_VALIDATION)
        if self.attack is not None:
            _typed(self, "attack", str, choices=ATTACKS)
        _int_in(self, "attackers", 0, 10_000)
        if self.attackers and self.attack is None:
            raise BadRequest(ATTACKERS_WITHOUT_ATTACK)
        if not isinstance(self.tiers, list) or not self.tiers or any(t not in TIERS for t in self.tiers):
            raise BadRequest(f"participant tiers must be a non-empty subset of {', '.join(TIERS)} "
                             "(only CORE and SANDBOX peers may contribute updates)")
        _int_in(self, "clients", 0, 10_000)
        _int_in(self, "hidden", 1, 4096)
        _int_in(self, "n_features", 0, 10**7)
        _int_in(self, "n_classes", 0, 1000)
        if self.image_shape is not None and not (
                isinstance(self.image_shape, list) and len(self.image_shape) == 2
                and all(isinstance(v, int) and 0 < v <= 4096 for v in self.image_shape)):
            raise BadRequest("image_shape must be [height, width]")
        from core.identity import is_peer_id
        if not isinstance(self.aggregators, list) or len(self.aggregators) > MAX_AGGREGATORS \
                or not all(is_peer_id(a) for a in self.aggregators) \
                or len(set(self.aggregators)) != len(self.aggregators):
            raise BadRequest(f"aggregators must be at most {MAX_AGGREGATORS} distinct peer ids")

    @property
    def round_minimum(self) -> int:
        """Workers a round needs: min_clients, and at least SECAGG_MIN_ROSTER with secure aggregation."""
        return max(self.min_clients, SECAGG_MIN_ROSTER) if self.secure_agg else self.min_clients

    @property
    def image(self) -> tuple[int, int] | None:
        """``image_shape`` as the (height, width) pair the model functions take."""
        from core.learning.models import as_image_shape
        return as_image_shape(self.image_shape)

    def n_params(self) -> int:
        """The model's parameter count (by arithmetic: nothing is built)."""
        from core.learning.models import count_parameters
        return count_parameters(self.model, self.n_features, self.n_classes, self.image, self.hidden)

    def f(self, n_updates: int) -> int:
        """How many Byzantine updates the robust rules tolerate this round."""
        if self.byzantine is not None:
            return self.byzantine
        if self.attackers:
            return self.attackers
        return max(1, n_updates // 5) if self.rule.takes_f else 0


# -- the result of a round ----------------------------------------------------------
ROUND_STATUS_FIELDS = ("round", "accuracy", "loss", "accepted", "rejected", "seconds", "epsilon", "reasons",
                       "workers", "groups")


@dataclass
class RoundRecord:
    """What a committed round returns: checkpointed with its weights, emitted as ``ml_round``,
    and read as it is by ``ml status`` (its :data:`ROUND_STATUS_FIELDS`), the charts and the worker table."""
    round: int
    accuracy: float
    loss: float
    accepted: int
    rejected: int
    missing: int
    reasons: dict[str, int]
    seconds: float
    epsilon: float | None
    attempt: int
    # peer -> {"slot", "status": accepted|outlier|rejected|missing, and n_examples, train_loss,
    # norm, used (an update that came in) or reason (a rejected one)}: failed workers are data too
    workers: dict[str, dict]
    secure_agg: bool
    at: float
    # Two levels: aggregator -> {"workers": [...], "status": combined|lost, "accepted", "rejected",
    # "weight", "loss"}; every worker entry above then names its "group". Empty for one level.
    groups: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def round_view(record: dict) -> dict:
    """The fields of a round record that ``ml status`` shows (a record from an older checkpoint may lack some)."""
    return {k: record.get(k) for k in ROUND_STATUS_FIELDS}


def _typed(spec, name, kind, choices=None):
    value = getattr(spec, name)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadRequest(f"task field {name} must be {kind.__name__}")
    if choices and value not in choices:
        raise BadRequest(f"{name} {value!r} is not one of {', '.join(choices)}")


def _int_in(spec, name, low, high):
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number between {low} and {high} (got {value!r})")


def _float_in(spec, name, low, high, low_open=False):
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a number (got {value!r})")
    value = float(value)
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        raise BadRequest(f"{name} must be in {'(' if low_open else '['}{low:g}, {high:g}] (got {value!r})")
    setattr(spec, name, value)


# -- message bodies ------------------------------------------------------------
def need(body, key: str, kind, *, optional: bool = False, max_len: int | None = None):
    """``body[key]`` if it has type ``kind`` (MalformedMessage otherwise)."""
    if not isinstance(body, dict):
        raise MalformedMessage("message body must be a map")
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MalformedMessage(f"field {key!r} must be {names}")
    if max_len is not None and hasattr(value, "__len__") and len(value) > max_len:
        raise MalformedMessage(f"field {key!r} is too long ({len(value)} > {max_len})")
    return value


def task_id(body) -> str:
    """The ``task`` field, checked to be a task id."""
    value = need(body, "task", str, max_len=64)
    if not TASK_ID.match(value):
        raise MalformedMessage("task id must be 16 hex digits")
    return value


@dataclass(frozen=True)
class RoundAnnouncement:
    """What a worker needs to train one round (from a sealed ml.round)."""
    task: str
    round: int
    attempt: int
    round_id: bytes
    weights: bytes
    deadline: float
    partition: int | None
    n_partitions: int
    attack: str | None
    weight_cap: int
    secagg: dict | None
    spec: dict
    aggregator: str | None = None   # two levels: where this worker sends its update


def parse_round(body: dict, max_bytes: int, me: str) -> RoundAnnouncement:
    """Validate the body of a sealed ml.round and read the entry it assigns to worker ``me``."""
    assign = need(body, "assign", dict, max_len=MAX_GROUP)
    mine = assign.get(me)
    if not isinstance(mine, dict):
        raise MalformedMessage("the round assigns nothing to this node")
    rnd = need(body, "round", int)
    attempt = need(body, "attempt", int)
    round_id = need(body, "round_id", bytes)
    if len(round_id) != ROUND_ID_BYTES:
        raise MalformedMessage(f"round_id must be {ROUND_ID_BYTES} bytes")
    weights = need(body, "weights", bytes, max_len=max_bytes)
    deadline = need(body, "deadline", (int, float))
    partition = need(mine, "partition", int, optional=True)
    n_parts = need(body, "n_partitions", int)
    attack = need(mine, "attack", str, optional=True)
    if attack is not None and attack not in ATTACKS:
        raise MalformedMessage(f"unknown attack {attack!r}")
    cap = need(body, "weight_cap", int)
    secagg = need(mine, "secagg", dict, optional=True)
    spec = need(body, "spec", dict)
    if not (1 <= rnd <= MAX_ROUNDS and 0 <= attempt < 10_000 and 0 < deadline <= 86400
            and n_parts >= 0 and cap >= 1 and (partition is None or 0 <= partition < max(n_parts, 1))):
        raise MalformedMessage("round, attempt, deadline, partition or weight cap out of range")
    aggregator = need(mine, "aggregator", str, optional=True, max_len=64)
    from core.identity import is_peer_id
    if aggregator is not None and not is_peer_id(aggregator):
        raise MalformedMessage("aggregator must be a peer id")
    return RoundAnnouncement(task_id(body), rnd, attempt, round_id, weights, float(deadline),
                             partition, n_parts, attack, cap, secagg, spec, aggregator)


@dataclass(frozen=True)
class UpdateBody:
    """A worker's update (from a sealed ml.update)."""
    task: str
    round: int
    round_id: bytes
    weights: bytes | None
    masked: bytes | None
    n_examples: int
    loss: float


def parse_update(body: dict) -> UpdateBody:
    """Validate the body of a sealed ml.update (payload sizes are checked by the decoder)."""
    rnd = need(body, "round", int)
    round_id = need(body, "round_id", bytes)
    weights = need(body, "weights", bytes, optional=True)
    masked = need(body, "masked", bytes, optional=True)
    if (weights is None) == (masked is None):
        raise MalformedMessage("an update carries either weights or a masked vector")
    n = need(body, "n_examples", int)
    loss = need(body, "loss", (int, float))
    if not (0 <= rnd <= MAX_ROUNDS and 1 <= n <= 10**9):
        raise MalformedMessage("round or example count out of range")
    return UpdateBody(task_id(body), rnd, round_id, weights, masked, n,
                      float(loss) if math.isfinite(loss) else float("nan"))


@dataclass(frozen=True)
class GroupRound:
    """What a group's aggregator needs for one round (from a sealed ml.agg.round)."""
    task: str
    round: int
    attempt: int
    round_id: bytes
    weights: bytes
    deadline: float
    weight_cap: int
    spec: dict
    group: dict[str, int]   # worker -> slot


def parse_group_round(body: dict, max_bytes: int) -> GroupRound:
    """Validate the body of a sealed ml.agg.round."""
    from core.identity import is_peer_id
    rnd = need(body, "round", int)
    attempt = need(body, "attempt", int)
    round_id = need(body, "round_id", bytes)
    weights = need(body, "weights", bytes, max_len=max_bytes)
    deadline = need(body, "deadline", (int, float))
    cap = need(body, "weight_cap", int)
    spec = need(body, "spec", dict)
    group = need(body, "group", dict, max_len=MAX_GROUP)
    if len(round_id) != ROUND_ID_BYTES:
        raise MalformedMessage(f"round_id must be {ROUND_ID_BYTES} bytes")
    if not (1 <= rnd <= MAX_ROUNDS and 0 <= attempt < 10_000 and 0 < deadline <= 86400 and cap >= 1):
        raise MalformedMessage("round, attempt, deadline or weight cap out of range")
    if not group or not all(is_peer_id(k) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**6
                            for k, v in group.items()):
        raise MalformedMessage("group must map worker peer ids to slots")
    return GroupRound(task_id(body), rnd, attempt, round_id, weights, float(deadline), cap, spec, dict(group))


WORKER_STATUS = ("accepted", "outlier", "rejected", "missing")


@dataclass(frozen=True)
class PartialBody:
    """A group's forwarded result (from a sealed ml.agg.partial); ``vector`` is float64 bytes."""
    task: str
    round: int
    round_id: bytes
    vector: bytes | None
    weight: float
    loss: float
    workers: dict[str, dict]


def parse_partial(body: dict, max_bytes: int) -> PartialBody:
    """Validate the body of a sealed ml.agg.partial (the vector's length is checked against the model later)."""
    rnd = need(body, "round", int)
    round_id = need(body, "round_id", bytes)
    vector = need(body, "vector", bytes, optional=True, max_len=max_bytes)
    weight = need(body, "weight", (int, float))
    loss = need(body, "loss", (int, float), optional=True)   # None: no worker reported one
    workers = need(body, "workers", dict, max_len=MAX_GROUP)
    if not (1 <= rnd <= MAX_ROUNDS and math.isfinite(weight) and weight >= 0):
        raise MalformedMessage("round or weight out of range")
    if (vector is None) != (weight == 0):
        raise MalformedMessage("a partial carries a vector exactly when its weight is positive")
    clean: dict[str, dict] = {}
    for peer, entry in workers.items():
        if not isinstance(peer, str) or not isinstance(entry, dict) or entry.get("status") not in WORKER_STATUS:
            raise MalformedMessage("each worker entry needs a status: " + ", ".join(WORKER_STATUS))
        n = entry.get("n_examples")
        if entry["status"] in ("accepted", "outlier") and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise MalformedMessage("an accepted worker entry needs its example count")
        clean[peer] = {"status": entry["status"], "n_examples": n if isinstance(n, int) else None,
                       "train_loss": _finite(entry.get("train_loss")), "norm": _finite(entry.get("norm")),
                       "used": bool(entry.get("used")),
                       "reason": str(entry.get("reason"))[:64] if entry.get("reason") is not None else None}
    return PartialBody(task_id(body), rnd, round_id, vector, float(weight),
                       float(loss) if loss is not None and math.isfinite(loss) else float("nan"), clean)


def _finite(x):
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None
