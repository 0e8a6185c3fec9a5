"""The service contract and the one registry of services a node runs.

A service is a package under ``core/`` (learning, chat, knowledge, delegation)
with the same files everywhere: ``service`` (the class below), ``commands``
(its ``covey`` subcommands: ``COMMANDS = core.commands.CommandSet()``, collected
by ``core.app.commands.load_commands``), ``protocol`` (its message bodies) and
``db`` when it persists. What it accepts signed from peers goes through
``core.admission.Admission``; the errors it raises live in ``core.errors``. Adding one is a new package plus one line in :data:`REGISTRY`.

The node builds each registered service with ``Service(node)``; the
constructor registers its message handlers (``node.on_message``) and must not
import heavy modules (torch). ``start()`` runs after the store is open and the
service's migrations are applied; ``stop()`` before the store closes.
Services reach each other only through ``node.service(name)``, never through
attributes set on the node.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class Service(Protocol):
    """What the node needs from a service."""

    # Read-only members, so a service may declare them as plain class attributes
    # (``name = "chat"``, ``migrations = MIGRATIONS``) with any sequence types.
    @property
    def name(self) -> str:
        """The service's registry name (also its component name in the store)."""

    @property
    def migrations(self) -> Sequence[Sequence[str]]:
        """Store schema of this service: a list of migrations, each a list of SQL statements
        (applied once, in order, under the component ``name``; see Store.ensure_schema)."""

    async def start(self) -> None:
        """Begin work (the store is open, the transport listening)."""

    async def stop(self) -> None:
        """End work and release what the service holds (idempotent)."""


@dataclass(frozen=True)
class Registration:
    """One registered service: its name, its class (``module:Class``) and its commands module."""
    name: str
    service: str
    commands: str | None = None

    def load_class(self) -> type:
        module, _, cls = self.service.partition(":")
        return getattr(importlib.import_module(module), cls)


# The services a node runs, in start order. One line per service.
REGISTRY: tuple[Registration, ...] = (
    Registration("learning", "core.learning.service:LearningService", "core.learning.commands"),
    Registration("chat", "core.chat.service:ChatService", "core.chat.commands"),
    Registration("delegation", "core.delegation.service:DelegationService", "core.delegation.commands"),
    Registration("knowledge", "core.knowledge.service:KnowledgeService", "core.knowledge.commands"),
)


def build_services(node, registry: Sequence[Registration] | None = None) -> dict[str, Service]:
    """Construct every registered service for ``node`` (in registry order)."""
    services: dict[str, Service] = {}
    for reg in REGISTRY if registry is None else registry:
        instance = reg.load_class()(node)
        if not isinstance(instance, Service) or instance.name != reg.name:
            raise TypeError(f"{reg.service} does not implement the Service contract as {reg.name!r}")
        services[reg.name] = instance
    return services
