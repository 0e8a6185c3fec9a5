"""A private Tor test network on 127.0.0.1: 3 directory authorities and 4 relays.

Nothing here may ever reach the public Tor network, so every tor this module
starts (and every ``TorController`` a test starts) must run inside a
loopback-only network namespace::

    unshare -n sh -c 'ip link set lo up && .venv/bin/python -m pytest -q -m tor tests/integration/tor'

:func:`in_loopback_only_namespace` is the guard: :meth:`PrivateTorNetwork.start`
refuses to run without it, and the fixtures skip the tor tests instead.

What makes the network reliable on these machines (see docs/notes.md, "Tor and
SOCKS5"): ``DirCache 0`` on relays, the Stable flag without uptime
requirements on authorities, ``UseEntryGuards 0`` on clients, a 10 s voting
interval, no IPv6, no GeoIP files, the Vanilla scheduler, and clients started
only once the authorities hold a microdescriptor consensus.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TOR = shutil.which("tor") or "/usr/sbin/tor"
TOR_GENCERT = shutil.which("tor-gencert") or "/usr/bin/tor-gencert"
KILL_AFTER = 15.0  # seconds a tor gets to honour SIGTERM before SIGKILL


def in_loopback_only_namespace() -> bool:
    """True when this process's network namespace has no interface but ``lo``.

    ``socket.if_nameindex()`` and ``/proc/self/net/dev`` both describe the
    namespace the process is in (``/sys/class/net`` would still show the host's
    interfaces after a plain ``unshare -n``, because sysfs was mounted outside).
    """
    try:
        names = {name for _, name in socket.if_nameindex()}
        dev = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    proc_names = {line.split(":", 1)[0].strip() for line in dev if ":" in line}
    return names == {"lo"} and proc_names == {"lo"}


def tor_available() -> bool:
    return os.access(TOR, os.X_OK) and os.access(TOR_GENCERT, os.X_OK)


def require_private_namespace() -> None:
    if not in_loopback_only_namespace():
        raise RuntimeError("refusing to start tor outside a loopback-only network namespace "
                           "(run under `unshare -n sh -c 'ip link set lo up && ...'`)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TorNode:
    """One tor process of the network and the files that describe it."""
    name: str
    datadir: Path
    or_port: int
    dir_port: int = 0
    socks_port: int = 0
    control_port: int = 0
    fingerprint: str = ""
    v3ident: str = ""
    proc: subprocess.Popen | None = None
    owner: object = None  # a control connection that took ownership: tor exits when it closes

    @property
    def torrc(self) -> Path:
        return self.datadir.parent / f"{self.name}.torrc"

    @property
    def log(self) -> Path:
        return self.datadir.parent / f"{self.name}.log"


@dataclass
class PrivateTorNetwork:
    """Authorities and relays of a TestingTorNetwork; clients use :meth:`client_config`."""
    root: Path
    n_authorities: int = 3
    n_relays: int = 4
    authorities: list[TorNode] = field(default_factory=list)
    relays: list[TorNode] = field(default_factory=list)
    clients: list[TorNode] = field(default_factory=list)

    # -- configuration ---------------------------------------------------------------
    def dir_authority_lines(self) -> list[str]:
        return [f"DirAuthority {a.name} orport={a.or_port} no-v2 v3ident={a.v3ident} "
                f"127.0.0.1:{a.dir_port} {a.fingerprint}" for a in self.authorities]

    def common_config(self) -> list[str]:
        """Lines every tor of this network has (clients included)."""
        return ["TestingTorNetwork 1", *self.dir_authority_lines(),
                "ClientUseIPv6 0", "GeoIPFile", "GeoIPv6File", "Schedulers Vanilla",
                "PathsNeededToBuildCircuits 0.67", "ShutdownWaitLength 0", "SafeLogging 0"]

    def client_config(self) -> list[str]:
        """What a client (or onion service) tor needs to live in this network."""
        return [*self.common_config(), "UseEntryGuards 0"]

    def write_client_config(self, path: Path) -> Path:
        path.write_text("\n".join(self.client_config()) + "\n")
        return path

    def write_unreachable_config(self, path: Path) -> Path:
        """A client config naming the same authorities at ports where nothing listens:
        a tor given it starts but can never bootstrap."""
        dead = [f"DirAuthority {a.name} orport={free_port()} no-v2 v3ident={a.v3ident} "
                f"127.0.0.1:{free_port()} {a.fingerprint}" for a in self.authorities]
        lines = [line for line in self.client_config() if not line.startswith("DirAuthority ")]
        path.write_text("\n".join(dead + lines) + "\n")
        return path

    def _server_config(self, node: TorNode) -> list[str]:
        # Servers exit if pytest dies. (Not clients: stem would take ownership of a tor the
        # tests only attach to, and closing the test's controller would stop it.)
        return [*self.common_config(), f"__OwningControllerProcess {os.getpid()}",
                f"DataDirectory {node.datadir}", f"Nickname {node.name}",
                "Address 127.0.0.1", f"ORPort 127.0.0.1:{node.or_port}", "SocksPort 0",
                f"ContactInfo {node.name}@test.invalid", "AssumeReachable 1", "TestingDirAuthVoteExit *", "TestingDirAuthVoteHSDir *",
                "TestingDirAuthVoteGuard *", "TestingMinExitFlagThreshold 0",
                "V3AuthNIntervalsValid 2", f"Log notice file {node.log}", "RunAsDaemon 0"]

    def _authority_config(self, node: TorNode) -> list[str]:
        return [*self._server_config(node), f"DirPort 127.0.0.1:{node.dir_port}",
                "AuthoritativeDirectory 1", "V3AuthoritativeDirectory 1",
                "ExitPolicy reject *:*",
                "TestingV3AuthInitialVotingInterval 10", "TestingV3AuthInitialVoteDelay 2",
                "TestingV3AuthInitialDistDelay 2", "V3AuthVotingInterval 10",
                "V3AuthVoteDelay 2", "V3AuthDistDelay 2",
                "AuthDirVoteStableGuaranteeMinUptime 0", "AuthDirVoteStableGuaranteeMTBF 0"]

    def _relay_config(self, node: TorNode) -> list[str]:
        # Exits only towards loopback: inside the namespace there is nothing else anyway.
        return [*self._server_config(node), "DirCache 0", "ExitRelay 1",
                "ExitPolicyRejectPrivate 0", "ExitPolicy accept 127.0.0.0/8:*",
                "ExitPolicy reject *:*"]

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Create keys, start authorities and relays, wait for a microdescriptor consensus."""
        require_private_namespace()
        self.root.mkdir(parents=True, exist_ok=True)
        empty = self.root / "empty.torrc"
        empty.write_text("")
        for i in range(self.n_authorities):
            node = self._new_node(f"auth{i}", dir_port=free_port())
            self._make_authority_keys(node, empty)
            self.authorities.append(node)
        for i in range(self.n_relays):
            self.relays.append(self._new_node(f"relay{i}"))
        try:
            for node in self.authorities:
                self._launch(node, self._authority_config(node))
            for node in self.relays:
                self._launch(node, self._relay_config(node))
            self._wait_for_consensus(timeout)
        except BaseException:
            self.stop()
            raise

    def launch_client(self, name: str) -> TorNode:
        """A client tor with SOCKS and control (cookie auth) ports, run by the fixture."""
        require_private_namespace()
        node = self._new_node(name, or_port=0)
        node.socks_port, node.control_port = free_port(), free_port()
        self._launch(node, [*self.client_config(), f"DataDirectory {node.datadir}",
                            f"SocksPort 127.0.0.1:{node.socks_port}",
                            f"ControlPort 127.0.0.1:{node.control_port}", "CookieAuthentication 1",
                            f"Log notice file {node.log}", "RunAsDaemon 0"])
        self.clients.append(node)
        self._wait_for_port(node, node.control_port)
        node.owner = self._take_ownership(node)
        return node

    @staticmethod
    def _take_ownership(node: TorNode):
        """Hold a control connection that owns this tor, so it exits with this process."""
        from stem.control import Controller
        controller = Controller.from_port("127.0.0.1", node.control_port)
        controller.authenticate()
        controller.msg("TAKEOWNERSHIP")
        return controller

    def processes(self) -> list[subprocess.Popen]:
        return [n.proc for n in self.authorities + self.relays + self.clients if n.proc is not None]

    def stop(self) -> None:
        """SIGTERM every tor; SIGKILL those still alive after 15 s."""
        for node in self.clients:
            if node.owner is not None:
                node.owner.close()
        procs = [p for p in self.processes() if p.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + KILL_AFTER
        for p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    # -- helpers -------------------------------------------------------------------------
    def _new_node(self, name: str, dir_port: int = 0, or_port: int | None = None) -> TorNode:
        datadir = self.root / name / "data"
        datadir.mkdir(parents=True, mode=0o700)
        return TorNode(name, datadir, free_port() if or_port is None else or_port, dir_port)

    def _make_authority_keys(self, node: TorNode, empty: Path) -> None:
        keys = node.datadir / "keys"
        keys.mkdir(mode=0o700)
        subprocess.run([TOR_GENCERT, "--create-identity-key", "-m", "12",
                        "-a", f"127.0.0.1:{node.dir_port}",
                        "-i", str(keys / "authority_identity_key"),
                        "-s", str(keys / "authority_signing_key"),
                        "-c", str(keys / "authority_certificate"), "--passphrase-fd", "0"],
                       input=b"\n", check=True, capture_output=True, timeout=60)
        cert = (keys / "authority_certificate").read_text()
        node.v3ident = next(line.split()[1] for line in cert.splitlines()
                            if line.startswith("fingerprint "))
        # --list-fingerprint creates the relay identity key and exits without networking.
        subprocess.run([TOR, "--list-fingerprint", "--defaults-torrc", str(empty), "-f", str(empty),
                        "--DataDirectory", str(node.datadir), "--ORPort", str(node.or_port),
                        "--DirAuthority", "placeholder 127.0.0.1:1 " + "f" * 40,
                        "--ClientUseIPv6", "0", "--Log", "err stderr"],
                       check=True, capture_output=True, timeout=60)
        node.fingerprint = (node.datadir / "fingerprint").read_text().split()[1]

    def _launch(self, node: TorNode, config: list[str]) -> None:
        require_private_namespace()
        node.torrc.write_text("\n".join(config) + "\n")
        empty = self.root / "empty.torrc"
        node.proc = subprocess.Popen([TOR, "--defaults-torrc", str(empty), "-f", str(node.torrc)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def fingerprints(self) -> set[str]:
        """Relay identity fingerprints of every authority and relay (hex, upper case)."""
        return {(n.datadir / "fingerprint").read_text().split()[1]
                for n in self.authorities + self.relays if (n.datadir / "fingerprint").exists()}

    def _consensus_complete(self) -> bool:
        """Every authority holds a microdescriptor consensus that lists every router."""
        wanted = self.n_authorities + self.n_relays
        for a in self.authorities:
            path = a.datadir / "cached-microdesc-consensus"
            if not path.exists():
                return False
            routers = sum(1 for line in path.read_text().splitlines() if line.startswith("r "))
            if routers < wanted:
                return False
        return True

    def _wait_for_port(self, node: TorNode, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if node.proc.poll() is not None:
                raise RuntimeError(f"tor {node.name} exited; see {node.log}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tor {node.name} did not open port {port}; see {node.log}") from None
                time.sleep(0.1)

    def _wait_for_consensus(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = [n.name for n in self.authorities + self.relays if n.proc.poll() is not None]
            if dead:
                raise RuntimeError(f"tor {', '.join(dead)} exited; see the logs in {self.root}")
            if self._consensus_complete():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no consensus after {timeout:g} s; see the logs in {self.root}")
            time.sleep(0.25)
