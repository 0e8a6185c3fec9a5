"""The panels of the main window, each declared once: where it goes, how it is built, what it needs.

Adding a tab is a package under ``desktop/`` and one line in :data:`PANELS`.
A panel that declares a ``service`` is built only when the node runs that
service (``factory(node, service)``); the others are built as ``factory(node)``.
The window keeps each built panel as ``window.<key>`` (None when it is not shown).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtWidgets import QWidget


from .chat.chat_panel import ChatPanel
from .encryption.banner import SecurityBanner
from .encryption.encryption_panel import EncryptionPanel
from .knowledge.knowledge_panel import KnowledgePanel
from .network.network_panel import NetworkPanel
from .node.node_panel import NodePanel
from .peers.peers_panel import PeersPanel
from .tasks.tasks_panel import TasksPanel
from .training.training_panel import TrainingPanel

TOP, TAB = "top", "tab"   # across the window above the tabs, a tab


@dataclass(frozen=True)
class Panel:
    """One panel of the window."""
    key: str                                  # the window attribute that holds it
    factory: Callable[..., QWidget]
    place: str                                # TOP or TAB
    title: str = ""                           # the tab's title
    service: str | None = None                # the core service it renders, if any

    def build(self, node) -> QWidget | None:
        """The panel for ``node``, or None when the service it needs does not run there."""
        if self.service is None:
            return self.factory(node)
        service = find_service(node, self.service)
        return None if service is None else self.factory(node, service)


PANELS: tuple[Panel, ...] = (
    Panel("banner", SecurityBanner, TOP),
    Panel("node_panel", NodePanel, TAB, "Node"),
    Panel("network_panel", NetworkPanel, TAB, "Network"),
    Panel("encryption_panel", EncryptionPanel, TAB, "Encryption"),
    Panel("chat_panel", ChatPanel, TAB, "Chat", service="chat"),
    Panel("peers_panel", PeersPanel, TAB, "Trust"),
    Panel("training_panel", TrainingPanel, TAB, "Training", service="learning"),
    Panel("knowledge_panel", KnowledgePanel, TAB, "Knowledge", service="knowledge"),
    Panel("tasks_panel", TasksPanel, TAB, "Tasks", service="delegation"),
)


def find_service(node, name: str) -> Any | None:
    """The node's service called ``name``, or None when the node does not run it."""
    return node.service(name) if node.has_service(name) else None
