"""One typed settings object: flags > environment > file > defaults.

The same ``Settings`` flows from the CLI (or GUI) into every service.
``config.json`` in the node's home holds what the user changed; secrets
(the network key, a proxy password) live in their own 0600 files and are
never part of the settings that are shown or returned.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import BadRequest
from .files import private_dir, write_atomic

log = logging.getLogger("covey.config")

MODES = ("none", "asymmetric", "symmetric")  # ordered: weakest first
MODE_RANK = {mode: rank for rank, mode in enumerate(MODES)}
DEFAULT_LISTEN = "0.0.0.0:8102"
MAX_NAME = 64   # characters of a node name (what a handshake carries)
BUILTIN_DATASETS = ("digits", "synthetic")   # shipped with the learning code (scikit-learn)
MAX_TASK_DATASETS = 256


def default_home() -> Path:
    """The platform's user data dir (platformdirs), unless COVEY_HOME says otherwise."""
    env = os.environ.get("COVEY_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir
    return Path(user_data_dir("covey", appauthor=False))


def parse_hostport(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' -> (host, port); BadRequest on anything else."""
    text = (text or "").strip()
    if text.startswith("ws://") or text.startswith("http://"):
        text = text.split("://", 1)[1].split("/", 1)[0]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise BadRequest(f"address {text!r} must be HOST:PORT (for example 192.168.1.20:8102)")
    host = host or default_host
    try:
        port = int(port_text)
    except ValueError:
        raise BadRequest(f"address {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise BadRequest(f"address {text!r}: port must be 0-65535")
    return host, port


def offered_modes(min_mode: str, have_network_key: bool) -> list[str]:
    """Modes a node accepts, weakest first: its minimum and stronger (symmetric needs the key)."""
    low = MODE_RANK[min_mode]
    return [m for m in MODES if MODE_RANK[m] >= low and (m != "symmetric" or have_network_key)]


def check_mode(mode: str, what: str = "mode") -> str:
    if mode not in MODE_RANK:
        raise BadRequest(f"unknown {what} {mode!r}: choose one of {', '.join(MODES)}")
    return mode


def invalid(setting: str, why: str) -> BadRequest:
    """The error for one bad setting; it names the setting (``.setting``) so that
    :func:`load_settings` can add where the value came from."""
    exc = BadRequest(f"setting {setting}: {why}")
    vars(exc).update(setting=setting, why=why)
    return exc


def _ipv4(setting: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise invalid(setting, f"{value!r} is not an IPv4 address") from None


def _check_port(setting: str, port: int, low: int = 1) -> None:
    if not low <= port <= 65535:
        raise invalid(setting, f"port {port} is not in {low}..65535")


def parse_network_key(text: str) -> bytes:
    """A network key given as hex (a file's or a field's text) -> its 32 bytes."""
    try:
        key = bytes.fromhex((text or "").strip())
    except ValueError:
        raise BadRequest("the network key file must hold 64 hex digits") from None
    return check_network_key(key)


def check_network_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != 32:
        raise BadRequest("a network key is 32 bytes (64 hex digits)")
    return key


MAX_KEY_FILE = 4096   # bytes read of a network key file someone hands over


def read_key_file(path: Path) -> bytes:
    """The network key in a file to import: 64 hex digits (around them, white space)."""
    with open(path, "rb") as f:
        data = f.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise BadRequest(f"{path} is not a network key file: it is larger than {MAX_KEY_FILE} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(f"{path} is not a network key file: a key file holds 64 hex digits") from None
    return parse_network_key(text)


def read_network_key(path: Path) -> bytes | None:
    """The key in ``path`` (network.key: 64 hex digits), None when there is none."""
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    try:
        key = bytes.fromhex(data.decode())
    except ValueError:
        raise BadRequest(f"{path} is not a valid network key; re-import it") from None
    if len(key) != 32:
        raise BadRequest(f"{path} must hold 32 bytes (64 hex digits)")
    return key


@dataclass
class Settings:
    """Everything a node can be told; defaults work out of the box."""
    name: str = ""
    listen: str = DEFAULT_LISTEN
    mode: str = "asymmetric"        # preferred encryption mode
    min_mode: str = "asymmetric"    # weakest mode we accept
    discovery: bool = True
    discovery_group: str = "239.255.0.1"
    discovery_port: int = 8103
    discovery_interval: float = 5.0
    discovery_interface: str = "0.0.0.0"   # IPv4 address of the LAN interface; 0.0.0.0: the default route's
    bootstrap: list[str] = field(default_factory=list)
    proxy_mode: str = "off"         # off | socks5 | tor
    proxy_host: str = ""
    proxy_port: int = 0
    proxy_user: str = ""
    tor_control: str = ""           # HOST:PORT of a running tor's control port; empty: start our own tor
    tor_config: str = ""            # torrc for our own tor (e.g. a private network's DirAuthority lines)
    tor_public_network: bool = False  # let our own tor join the public Tor network (explicit opt-in)
    max_frame: int = 1 << 20        # bytes per WebSocket frame (after chunking)
    max_message: int = 64 << 20     # bytes per reassembled message
    clock_skew: float = 120.0
    ban_threshold: float = 0.2
    max_handshakes: int = 64        # concurrent inbound handshakes
    unknown_per_minute: int = 30    # new connections per minute from one address
    max_unknown_peers: int = 256    # peer-book rows of strangers the user never added or trusted
    unknown_peer_ttl: float = 7 * 86400.0  # ... each forgotten this long after it was last seen
    connect_timeout: float = 10.0
    heartbeat: float = 20.0
    # Flood bounds (issue 6). Inbound sockets and handshakes:
    hello_timeout: float = 5.0      # an inbound WebSocket must send its hello within this
    http_idle_timeout: float = 10.0  # an HTTP request (headers) must arrive within this; idle keep-alive too
    max_connections: int = 512      # inbound sockets at once (peers, handshakes, HTTP)
    tor_handshakes: int = 32        # concurrent inbound handshakes via the onion service (own budget)
    max_unknown_connections: int = 32  # established connections with UNKNOWN peers, node-wide
    # Per peer, once connected:
    unknown_max_message: int = 256 << 10  # bytes per message from a stranger (UNKNOWN, not added by the user)
    unknown_partial_budget: int = 32 << 20  # of partial_budget, what UNKNOWN peers may hold together
    unknown_rate: float = 1000.0    # messages per second from an UNKNOWN peer (token bucket)
    peer_rate: float = 1_000_000.0  # messages per second from a known peer
    handler_tasks: int = 32         # async handler tasks in flight per connection
    partial_budget: int = 256 << 20  # bytes of unfinished chunked messages, all connections together
    partial_timeout: float = 120.0  # seconds an unfinished chunked message may take
    # Datasets delegated tasks may read, by name: a built-in or an absolute .csv/.npz path.
    # A task names one of these; it never gives a path.
    task_datasets: dict[str, str] = field(default_factory=lambda: {n: n for n in BUILTIN_DATASETS})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every setting; a bad one raises BadRequest naming it (see :func:`invalid`)."""
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            ok = isinstance(value, _TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))
            if ok and isinstance(value, list):
                ok = all(isinstance(v, str) for v in value)
            if not ok:
                raise invalid(name, f"{value!r} is not a valid {kind}")
        if len(self.name) > MAX_NAME or not self.name.isprintable():
            raise invalid("name", f"must be at most {MAX_NAME} printable characters")
        for name in ("mode", "min_mode"):
            if getattr(self, name) not in MODE_RANK:
                raise invalid(name, f"unknown mode {getattr(self, name)!r}: choose one of {', '.join(MODES)}")
        if MODE_RANK[self.mode] < MODE_RANK[self.min_mode]:
            raise invalid("mode", f"preferred mode {self.mode} is weaker than the minimum {self.min_mode}")
        _hostport("listen", self.listen, "0.0.0.0")
        if self.proxy_mode not in ("off", "socks5", "tor"):
            raise invalid("proxy_mode", f"{self.proxy_mode!r}: choose off, socks5 or tor")
        _check_port("proxy_port", self.proxy_port, low=0)
        if self.tor_control:
            _hostport("tor_control", self.tor_control)
        if not _ipv4("discovery_group", self.discovery_group).is_multicast:
            raise invalid("discovery_group", f"{self.discovery_group!r} is not an IPv4 multicast "
                          "address (224.0.0.0/4)")
        _check_port("discovery_port", self.discovery_port)
        if not self.discovery_interval > 0:
            raise invalid("discovery_interval", "must be a positive number of seconds")
        _ipv4("discovery_interface", self.discovery_interface)
        for address in self.bootstrap:
            _hostport("bootstrap", address)
        if not 0 < self.ban_threshold < 1:
            raise invalid("ban_threshold", "must be between 0 and 1")
        if self.max_unknown_peers < 1 or not self.unknown_peer_ttl > 0:
            raise invalid("max_unknown_peers", "must be at least 1 (and unknown_peer_ttl positive)")
        if self.max_frame < 4096 or self.max_message < self.max_frame:
            raise invalid("max_frame", "must be >= 4096 (and max_message >= max_frame)")
        for name in ("hello_timeout", "http_idle_timeout", "partial_timeout", "unknown_rate",
                     "peer_rate", "connect_timeout", "heartbeat", "clock_skew"):
            if not getattr(self, name) > 0:
                raise invalid(name, "timeouts and message rates must be positive")
        for name in ("max_connections", "tor_handshakes", "max_unknown_connections", "max_handshakes",
                     "unknown_max_message", "handler_tasks", "partial_budget",
                     "unknown_partial_budget", "unknown_per_minute"):
            if getattr(self, name) < 1:
                raise invalid(name, "connection, handshake, task and size limits must be at least 1")
        try:
            self.task_datasets = check_task_datasets(self.task_datasets)
        except BadRequest as exc:
            raise invalid("task_datasets", str(exc)) from None

    @property
    def listen_hostport(self) -> tuple[str, int]:
        return parse_hostport(self.listen, default_host="0.0.0.0")

    def public(self) -> dict[str, Any]:
        return asdict(self)


def check_task_datasets(datasets: Any) -> dict[str, str]:
    """The ``task_datasets`` map, checked: at most 256 names of 1 to 64 characters, each
    a built-in dataset or an absolute path to a .csv or .npz file."""
    if not isinstance(datasets, dict) or len(datasets) > MAX_TASK_DATASETS:
        raise BadRequest(f"task_datasets must be a map of at most {MAX_TASK_DATASETS} names to datasets")
    for name, spec in datasets.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64 or not name.isprintable():
            raise BadRequest(f"task_datasets: dataset name {name!r:.80} must be 1 to 64 printable characters")
        if not isinstance(spec, str) or not (spec in BUILTIN_DATASETS or (
                os.path.isabs(spec) and spec.lower().endswith((".csv", ".npz")))):
            raise BadRequest(f"task_datasets: {name!r} -> {spec!r:.200} is neither a built-in dataset "
                             f"({', '.join(BUILTIN_DATASETS)}) nor an absolute .csv/.npz path")
    return dict(datasets)


_ENV_PREFIX = "COVEY_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "str": str,
                                             "list": list, "dict": dict}


def _hostport(setting: str, text: str, default_host: str = "127.0.0.1") -> None:
    try:
        parse_hostport(text, default_host=default_host)
    except BadRequest as exc:
        raise invalid(setting, str(exc)) from None


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type).split("[")[0] for f in fields(Settings)}  # int, list, ...


def _coerce(name: str, raw: Any) -> Any:
    """A value from a file, the environment or a flag -> the setting's type (BadRequest if not)."""
    kind = _FIELD_TYPES[name]
    try:
        if kind == "list":
            return raw if isinstance(raw, list) else [s for s in str(raw).split(",") if s]
        if kind == "dict":  # a map: as is from config.json, JSON text from the environment
            return raw if isinstance(raw, dict) else json.loads(str(raw))
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE + _FALSE:
                return text in _TRUE
            raise ValueError(raw)
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise TypeError(raw)
        if kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            return float(raw)
    except (TypeError, ValueError, OverflowError):
        raise invalid(name, f"{raw!r} is not a valid {kind}") from None
    return raw if isinstance(raw, str) else str(raw)


def load_settings(home: Path, overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults < home/config.json < COVEY_* environment < explicit overrides (flags).

    Every setting is checked here, at load time: a bad one is a BadRequest that
    names the setting and where its value came from."""
    names = {f.name for f in fields(Settings)}
    merged: dict[str, Any] = {}
    source: dict[str, str] = {}
    path = home / "config.json"
    for key, value in _read_config(path).items():
        if key in names:
            merged[key], source[key] = value, str(path)
    for name in names:
        raw = os.environ.get(_ENV_PREFIX + name.upper())
        if raw is not None:
            merged[name], source[name] = raw, f"{_ENV_PREFIX}{name.upper()} in the environment"
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key], source[key] = value, "the command line"
    try:
        return Settings(**{k: _coerce(k, v) for k, v in merged.items()})
    except BadRequest as exc:
        named = vars(exc)
        where = source.get(named.get("setting", ""))
        if where is None:
            raise
        raise invalid(named["setting"], f"{named['why']} (from {where})") from None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as exc:
        raise BadRequest(f"{path} is not valid JSON ({exc}); fix or move it aside") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{path} is not valid JSON (not an object); fix or move it aside")
    return data


def save_settings(home: Path, changes: dict[str, Any]) -> None:
    """Persist user changes to home/config.json (merged with what is there), crash-safe."""
    path = home / "config.json"
    current = _read_config(path)
    current.update(changes)
    private_dir(home)
    write_atomic(path, json.dumps(current, indent=2, sort_keys=True).encode(), 0o600)


def with_changes(settings: Settings, **changes: Any) -> Settings:
    """A validated copy of ``settings`` with ``changes`` applied."""
    unknown = set(changes) - {f.name for f in fields(Settings)}
    if unknown:
        raise BadRequest(f"unknown settings: {', '.join(sorted(unknown))}")
    return replace(settings, **{k: _coerce(k, v) for k, v in changes.items()})


def write_secret(path: Path, data: bytes) -> None:
    """Write a secret file atomically with mode 0600 from the first byte."""
    write_atomic(path, data, 0o600)
