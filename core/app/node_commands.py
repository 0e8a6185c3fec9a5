"""The node's own commands: `covey id`, `peers ...`, `crypto ...` and `proxy ...`.

Services declare theirs in their own package (``core/<service>/commands.py``);
:func:`core.app.commands.load_commands` collects both.
"""
from __future__ import annotations

from core.commands import CommandSet, Param
from core.config import MODES
from core.errors import BadRequest

COMMANDS = CommandSet()
command = COMMANDS.command

PEER = Param("peer", "peer id, unique id prefix, or name", max_len=128)
TIERS = ("core", "sandbox", "external", "unknown")


@command("id", "show id, fingerprint, listen and onion addresses")
async def _id(node):
    return node.info()


@command("peers.list", "list the peer book")
async def _peers_list(node):
    return node.list_peers()


@command("peers.add", "add a peer by address (pin its key with --key) or by its contact link",
         Param("address", "HOST:PORT of the peer, or its contact link covey://HOST:PORT#ID", max_len=320),
         Param("key", "the peer's id (64 hex) to pin", flag="--key", required=False),
         Param("name", "a name for the peer", flag="--name", required=False, max_len=64))
async def _peers_add(node, address, key=None, name=None):
    return await node.add_peer(address, key=key, name=name)


@command("peers.trust", "set a peer's trust tier", PEER, Param("tier", "trust tier", choices=TIERS))
async def _peers_trust(node, peer, tier):
    return node.trust(peer, tier)


@command("peers.ban", "ban a peer (disconnects it)", PEER)
async def _peers_ban(node, peer):
    return await node.ban(peer)


@command("peers.unban", "lift a ban", PEER)
async def _peers_unban(node, peer):
    return node.unban(peer)


@command("peers.remove", "forget a peer", PEER)
async def _peers_remove(node, peer):
    return await node.remove_peer(peer)


@command("crypto.mode", "show or set the encryption mode (and the minimum accepted)",
         Param("mode", "asymmetric|symmetric|none", required=False, choices=MODES),
         Param("min", "weakest mode accepted (defaults to MODE)", flag="--min", required=False,
               choices=MODES))
async def _crypto_mode(node, mode=None, min=None):
    if mode is None and min is None:
        return node.crypto_view()
    return await node.set_mode(mode, min)


@command("crypto.psk.generate", "generate a new network key for symmetric mode")
async def _psk_generate(node):
    return await node.psk_set()


@command("crypto.psk.import", "import a network key (64 hex digits)",
         Param("key", "the key as hex", max_len=200))
async def _psk_import(node, key):
    return await node.psk_set(key)


@command("crypto.psk.export", "export the network key")
async def _psk_export(node):
    key = node.psk()
    if key is None:
        raise BadRequest("no network key: `covey crypto psk generate` or `covey crypto psk import FILE`")
    return {"key": key.hex()}


@command("proxy.show", "show proxy settings (the password is never shown)")
async def _proxy_show(node):
    return node.proxy_view()


@command("proxy.set", "route outbound connections through SOCKS5 or Tor",
         Param("socks5", "HOST:PORT of a SOCKS5 proxy", flag="--socks5", required=False, max_len=300),
         Param("tor", "use Tor (our own tor, or a running one with --tor-control)", flag="--tor",
               kind=bool, required=False),
         Param("tor_control", "a running tor's control port HOST:PORT (cookie auth)",
               flag="--tor-control", required=False, max_len=300),
         Param("tor_config", "torrc lines our own tor joins with (e.g. a private network's "
               "DirAuthority lines); saved as the tor_config setting", flag="--tor-config",
               required=False, max_len=1024),
         Param("user", "SOCKS5 user", flag="--user", required=False, max_len=255),
         Param("password", "SOCKS5 password (read from --password-file by the CLI)",
               required=False, max_len=255))
async def _proxy_set(node, socks5=None, tor=None, tor_control=None, tor_config=None, user=None,
                     password=None):
    return await node.choose_proxy(socks5=socks5, tor=bool(tor), tor_control=tor_control,
                                   tor_config=tor_config, user=user, password=password)


@command("proxy.off", "connect directly again")
async def _proxy_off(node):
    return await node.set_proxy("off", password="")


@command("proxy.newnym", "ask tor for new circuits (new identity; tor allows one every 10 s)")
async def _proxy_newnym(node):
    return await node.route.new_identity()


@command("proxy.circuits", "list tor's circuits")
async def _proxy_circuits(node):
    return await node.route.circuits()
