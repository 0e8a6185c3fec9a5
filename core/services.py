"""The services a node runs beside its transport (learning, chat, knowledge, ...).

Each service is built with the node, registers its message handlers with
``node.on_message`` in its constructor, and has ``async start()`` and
``async stop()``. Services must not import heavy modules (torch) at import
time: the node starts and connects without paying for them.
"""
from __future__ import annotations


def build_services(node) -> list:
    """The services of ``node``, in start order."""
    from .learning.service import LearningService
    return [LearningService(node)]
