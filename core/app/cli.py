"""The `covey` command.

`covey` opens the desktop app (headless when there is no display),
`covey --headless` runs a node, `covey init` creates an identity, and every
other subcommand talks to the running node of its home through the control
API; their arguments come from the declarations the loader
:func:`core.app.commands.load_commands` collects.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.app.client import call
from core.errors import CoveyError, human

VERSION = "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    from core.app.commands import load_commands
    parser = argparse.ArgumentParser(prog="covey", description="A node of a small private federation.")
    parser.add_argument("--home", help="the node's data directory (default: $COVEY_HOME or the user data dir)")
    parser.add_argument("--headless", action="store_true", help="run the node without a GUI")
    parser.add_argument("--listen", help="HOST:PORT to listen on (default 0.0.0.0:8102; port 0 picks one)")
    parser.add_argument("--name", dest="node_name", help="this node's display name")
    parser.add_argument("--passphrase-file", help="file holding the identity passphrase")
    parser.add_argument("--log-level", default=os.environ.get("COVEY_LOG_LEVEL", "info"))
    parser.add_argument("--version", action="version", version=f"covey {VERSION}")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {}
    top = parser.add_subparsers(dest="cmd0", metavar="COMMAND")
    groups[()] = top

    def subparser(path: tuple[str, ...], help: str) -> argparse.ArgumentParser:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in groups:
                holder = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{' '.join(prefix)} commands")
                groups[prefix] = holder.add_subparsers(dest=f"cmd{depth}", metavar="COMMAND", required=True)
        sub = groups[path[:-1]].add_parser(path[-1], help=help)
        sub.add_argument("--json", action="store_true", help="print one JSON document")
        sub.set_defaults(command=".".join(path))
        return sub

    init = subparser(("init",), "create this home's identity if missing; print id and fingerprint")
    init.add_argument("--name", help="display name")
    subparser(("crypto", "self-test"), "sign and verify; show tampering and wrong keys are rejected")
    demo = subparser(("demo",), "a small local federation: four nodes train a model together")
    demo.add_argument("--dir", help="where the demo nodes live (default: a new temp directory)")
    demo.add_argument("--rounds", type=int, default=10)
    _cluster_parsers(subparser)
    for cmd in load_commands().values():
        sub = subparser(tuple(cmd.name.split(".")), cmd.help)
        for p in cmd.params:
            if p.name == "password":
                sub.add_argument("--password-file", help="file holding the proxy password")
            elif p.flag and p.kind is bool:
                sub.add_argument(p.flag, dest=p.name, action="store_true", help=p.help)
            elif p.flag:
                sub.add_argument(p.flag, dest=p.name, help=p.help, choices=p.choices,
                                 type=p.kind if p.kind in (int, float) else str)  # str: the text as given
            elif p.kind is list:
                sub.add_argument(p.name, help=p.help, nargs="*" if not p.required else "+")
            elif p.name == "key" and cmd.name == "crypto.psk.import":
                sub.add_argument("file", help="file holding the network key")
            else:
                sub.add_argument(p.name, help=p.help, choices=p.choices,
                                 nargs=None if p.required else "?")
        if cmd.name == "crypto.psk.export":
            sub.add_argument("file", help="file to write the network key to (mode 0600)")
    return parser


def _cluster_parsers(subparser) -> None:
    from core.app.cluster_plan import TOPOLOGIES
    up = subparser(("cluster", "up"), "start a local multi-process federation")
    up.add_argument("--nodes", type=int, required=True)
    up.add_argument("--topology", default="seed", choices=TOPOLOGIES,
                    help="seed (default): bootstrap/aggregator/worker/client roles; star: all dial node-0; "
                         "mesh: all dial all")
    for action in ("up", "status", "down", "kill", "start"):
        sub = up if action == "up" else subparser(("cluster", action), f"cluster {action}")
        sub.add_argument("--dir", default="covey-cluster", help="cluster directory (default ./covey-cluster)")
        if action in ("kill", "start"):
            sub.add_argument("node", nargs="+", help="node name(s), e.g. node-3")
    for action, what in (("compose", "a docker-compose file"), ("k8s", "Kubernetes manifests")):
        sub = subparser(("cluster", action), f"write {what} for a seed-topology federation")
        sub.add_argument("--nodes", type=int, required=True)
        sub.add_argument("--topology", default="seed", choices=("seed",))
        sub.add_argument("--image", default="covey:latest", help="image to run (default covey:latest)")
        sub.add_argument("--out", help="file to write (default: standard output)")


def home_of(args) -> Path:
    from core.config import default_home
    return Path(args.home).expanduser() if args.home else default_home()


def read_passphrase(args, required: bool = False) -> bytes | None:
    path = args.passphrase_file or os.environ.get("COVEY_PASSPHRASE_FILE")
    if path:
        return Path(path).read_bytes().rstrip(b"\r\n")
    if os.environ.get("COVEY_PASSPHRASE"):
        return os.environ["COVEY_PASSPHRASE"].encode()
    if required and sys.stdin.isatty():
        import getpass
        return getpass.getpass("identity passphrase: ").encode()
    return None


# -- human output ---------------------------------------------------------------
def show(name: str, result) -> str:
    if name == "cluster.status" or name == "cluster.up":
        return "\n".join(f"{n['name']:<8} {n['role']:<10} {n['state']:<8} pid {n['pid']:<7} peers {n['peers']:<3} "
                         f"{n['rss_mb']:>6.1f} MB  {n['address']}  {n['id'][:12]}" for n in result["nodes"])
    if name == "demo":
        return ""  # the demo narrated as it went
    if name in ("ml.status", "ml.start") and isinstance(result, dict) and "task" in result:
        from core.learning.follow import progress_line, round_line
        lines = [f"task {result['task']} ({result.get('state')}) " + progress_line(result)]
        lines += [round_line(h, result) for h in result.get("history") or []]
        if result.get("invitations"):
            lines.append(f"invitations: {', '.join(result['invitations'])} (join with `covey ml join TASK`)")
        return "\n".join(lines)
    if name in ("chat.read", "chat.group.read"):
        from core.chat.commands import line
        return "\n".join(line(m) for m in result) if result else "no messages"
    if name == "chat.group.invitations":
        from core.chat.commands import invitation_line
        return "\n".join(invitation_line(i) for i in result) if result else "no group invitations"
    if name == "peers.list":
        if not result:
            return "no peers yet: `covey peers add HOST:PORT`, or wait for LAN discovery"
        rows = [("NAME", "ID", "TIER", "CONNECTED", "MODE", "REP", "ADDRESS")]
        for p in result:
            rows.append((p["name"] or "-", p["id"][:12], p["tier"] + (" (banned)" if p["banned"] else ""),
                         "yes" if p["connected"] else "no", p["mode"] or "-", f"{p['reputation']:.2f}",
                         p["address"] or "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    if isinstance(result, dict):
        return "\n".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                         for k, v in result.items())
    return json.dumps(result, indent=2)


def self_test(home: Path, passphrase: bytes | None) -> dict:
    """Sign and verify with this home's identity (or a throwaway one)."""
    from core.identity import Identity, verify
    from core.errors import InvalidSignature
    identity = Identity.load(home, passphrase) if Identity.exists(home) else Identity.generate("self-test")
    message = b"covey self-test message"
    signature = identity.sign(message)
    checks = {}
    verify(identity.id, message, signature)
    checks["valid signature verifies"] = True
    for label, pid, msg in (("tampered message rejected", identity.id, message + b"!"),
                            ("wrong key rejected", Identity.generate("other").id, message)):
        try:
            verify(pid, msg, signature)
            checks[label] = False
        except InvalidSignature:
            checks[label] = True
    return {"ok": all(checks.values()), "id": identity.id, "checks": checks}


def init(home: Path, name: str | None, passphrase: bytes | None) -> dict:
    """`covey init`: this home's identity (created when missing)."""
    from core.identity import ensure_identity
    identity, created = ensure_identity(home, name or "", passphrase)
    return {"id": identity.id, "name": identity.name, "fingerprint": identity.fingerprint,
            "created": created, "home": str(home)}


def main(argv: list[str] | None = None, open_desktop=None) -> int:
    """Run `covey`; ``open_desktop(home, overrides, passphrase)`` opens the GUI (given by the
    launcher in ``desktop/``, since the core never imports the desktop)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    home = home_of(args)
    overrides = {"listen": args.listen, "name": args.node_name}
    try:
        if args.cmd0 is None:
            if args.headless or not _has_display() or open_desktop is None:
                if not args.headless:
                    print("covey: no display found; running the node headless (Ctrl-C stops it)",
                          file=sys.stderr)
                from core.app.headless import run
                return run(home, overrides, read_passphrase(args, True), args.log_level, exit_process=True)
            return open_desktop(home, overrides, read_passphrase(args, True))
        name = args.command
        if name == "init":
            result = init(home, args.name, read_passphrase(args))
        elif name == "crypto.self-test":
            result = self_test(home, read_passphrase(args, True))
        elif name == "demo":
            from core.app import demo
            result = demo.run(Path(args.dir).resolve() if args.dir else None, rounds=args.rounds,
                              out=sys.stderr if args.json else sys.stdout)
        elif name.startswith("cluster."):
            result = _cluster(name.split(".", 1)[1], args)
            if result is None:  # a manifest written to stdout
                return 0
        elif name == "ml.status" and args.follow:  # a live progress bar until the task ends
            from core.learning.follow import follow_task
            result = follow_task(call, home, _command_args(name, args))
        elif name == "chat.read" and args.follow:  # new messages as they arrive, until Ctrl-C
            from core.chat.commands import follow_messages
            follow_messages(call, home, _command_args(name, args), sys.stdout, as_json=args.json)
            return 0
        else:
            result = call(home, name, _command_args(name, args))
            if name == "crypto.psk.export":
                from core.config import write_secret
                write_secret(Path(args.file), result["key"].encode() + b"\n")
                result = {"exported": args.file}
    except CoveyError as exc:
        print(f"covey: {human(exc)}", file=sys.stderr)
        return 1
    except (OSError, KeyboardInterrupt) as exc:
        print(f"covey: {human(exc)}", file=sys.stderr)
        return 1
    text = json.dumps(result) if args.json else show(name, result)
    if text:
        print(text)
    if name == "crypto.self-test" and not result["ok"]:
        return 1
    return 0


def _cluster(action: str, args):
    from core.app import cluster
    if action in ("compose", "k8s"):
        from core.app import manifests
        text = manifests.render(action, args.nodes, args.image)
        if not args.out:
            sys.stdout.write(text)
            return None
        Path(args.out).write_text(text, encoding="utf-8")
        return {"wrote": args.out, "kind": action, "nodes": args.nodes}
    directory = Path(args.dir).resolve()
    if action == "up":
        return cluster.up(directory, args.nodes, args.topology)
    if action in ("kill", "start"):
        return getattr(cluster, action)(directory, *args.node)
    return getattr(cluster, action)(directory)


def _command_args(name: str, args) -> dict:
    from core.app.commands import load_commands
    values = {}
    for p in load_commands()[name].params:
        if p.name == "password":
            if getattr(args, "password_file", None):
                values["password"] = Path(args.password_file).read_text().rstrip("\r\n")
        elif p.name == "key" and name == "crypto.psk.import":
            values["key"] = Path(args.file).read_text().strip()
        elif p.name == "tor_config" and getattr(args, p.name, None):
            values[p.name] = str(Path(args.tor_config).expanduser().resolve())  # the node's cwd differs
        else:
            value = getattr(args, p.name, None)
            if value not in (None, False):
                values[p.name] = value
    prepare = getattr(load_commands()[name].run, "prepare_args", None)  # local files a command sends or names
    return prepare(values) if prepare is not None else values


def _has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "vnc", "eglfs", "linuxfb"))


if __name__ == "__main__":
    sys.exit(main())
