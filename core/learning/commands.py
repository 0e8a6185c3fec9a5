"""The ``covey ml`` commands (declared once: served by the control API, parsed by the CLI)."""
from __future__ import annotations

from core.commands import CommandSet, Param

from .protocol import AGGREGATORS, ATTACKS, MODELS

COMMANDS = CommandSet()
command = COMMANDS.command


def _learning(node):
    return node.service("learning")


def _opt(name, help, kind=str, choices=None):
    return Param(name, help, kind=kind, required=False, flag="--" + name.replace("_", "-"), choices=choices)


TASK = Param("task", "task id (or a unique prefix)", max_len=64)


@command("ml.start", "start a federated training task coordinated by this node",
         _opt("model", "model: mlp or cnn", choices=MODELS),
         _opt("dataset", "digits, synthetic, or a .csv/.npz file (the coordinator's held-out set)"),
         _opt("partition", "iid, dirichlet:ALPHA, or own (workers bring --data FILE)"),
         _opt("rounds", "number of rounds", int),
         _opt("epochs", "local epochs per round", int),
         _opt("lr", "local learning rate", float),
         _opt("batch", "local batch size", int),
         _opt("aggregator", "aggregation rule", choices=AGGREGATORS),
         _opt("prox_mu", "FedProx proximal weight (fedprox)", float),
         _opt("byzantine", "updates the robust rules tolerate (default: --attackers, or N/5)", int),
         _opt("min_clients", "accepted updates a round needs (else it is retried)", int),
         _opt("deadline", "seconds a round may take", float),
         _opt("seed", "random seed", int),
         _opt("dp_noise", "DP noise multiplier (with --dp-clip)", float),
         _opt("dp_clip", "DP clipping norm of each update", float),
         _opt("secure_agg", "secure aggregation (the coordinator sees only the sum)", bool),
         _opt("validate", "validate each update on the held-out set (default: on; off with --secure-agg or DP)",
              choices=("on", "off")),
         _opt("attack", "simulate attackers", choices=ATTACKS),
         _opt("attackers", "how many workers attack", int),
         _opt("tiers", "tiers that may contribute: core,sandbox (default both)"),
         _opt("clients", "simulated clients (default: the eligible peers connected now)", int),
         _opt("aggregators", "two-level aggregation: the group aggregators, CORE peer ids PEER,PEER,..."),
         _opt("groups", "two-level aggregation: N connected CORE peers aggregate the workers' groups", int))
async def _ml_start(node, validate=None, tiers=None, secure_agg=None, aggregators=None, **options):
    if validate is None:
        options["validate"] = not (secure_agg or options.get("dp_noise") is not None)
    else:
        options["validate"] = validate == "on"
    options["secure_agg"] = bool(secure_agg)
    if tiers is not None:
        options["tiers"] = [t.strip() for t in tiers.split(",") if t.strip()]
    if aggregators is not None:
        # an id, a unique id prefix or a peer's name, as elsewhere in the CLI
        options["aggregators"] = [node.peers.resolve(a.strip()).id for a in aggregators.split(",") if a.strip()]
    return await _learning(node).start_task(**options)


@command("ml.status", "show a training task (default: the newest)",
         Param("task", "task id (or a unique prefix)", required=False, max_len=64),
         _opt("follow", "refresh a progress bar until the task ends", bool))
async def _ml_status(node, task=None, follow=None):
    service = _learning(node)
    if task is not None:
        return {**await service.worker_status(task), **_lists(service)}
    return service.status()


def _lists(service) -> dict:
    return {"tasks": sorted(service.tasks) + sorted(t for t in service.worker.members if t not in service.tasks),
            "invitations": [m.task for m in service.worker.members.values() if m.state == "invited"]}


@command("ml.stop", "stop a task this node coordinates (or leave one it works on)", TASK)
async def _ml_stop(node, task):
    return await _learning(node).stop_task(task)


@command("ml.join", "join a task this node was invited to (as a worker)", TASK,
         _opt("data", "train on this local .csv/.npz file instead of a simulated partition"))
async def _ml_join(node, task, data=None):
    return await _learning(node).join(task, data)


@command("ml.auto-join", "join invitations from CORE/SANDBOX peers automatically (clusters, demos)",
         Param("mode", "on or off", choices=("on", "off")))
async def _ml_auto_join(node, mode):
    _learning(node).set_auto_join(mode == "on")
    return {"auto_join": mode == "on"}


@command("ml.budget", "show or set the largest model (in parameters) this node trains as a worker",
         Param("params", "new budget in parameters (default 5000000)", kind=int, required=False))
async def _ml_budget(node, params=None):
    return _learning(node).budget(params)
