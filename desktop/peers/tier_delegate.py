"""The tier cell's editor: a combo of the four tiers; the choice goes to the panel, not the model."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import QComboBox, QStyledItemDelegate

from .peers_model import PEER_ROLE

TIERS = ("core", "sandbox", "external", "unknown")
TIER_HELP = {
    "core": "full trust: knowledge propagation, tasks, relay",
    "sandbox": "may share knowledge and train, with stricter checks",
    "external": "may chat and query, nothing more",
    "unknown": "contact requests only (the default for new peers)",
}


class TierDelegate(QStyledItemDelegate):
    """Edits the tier column with a combo; ``tier_chosen(peer_id, tier)`` when the person picks
    another tier (the panel decides, so raising to CORE can ask first and the cell shows the
    node's tier, never a wish)."""

    tier_chosen = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.editor: QComboBox | None = None   # the open editor, for tests and accessibility checks

    def createEditor(self, parent, option, index: QModelIndex) -> QComboBox:
        combo = QComboBox(parent)
        for tier in TIERS:
            combo.addItem(tier, tier)
            combo.setItemData(combo.count() - 1, TIER_HELP[tier], Qt.ToolTipRole)
        combo.setToolTip("The peer's trust tier: what it may do on this node")
        combo.setAccessibleName("Trust tier")
        # one pick is the whole edit: commit and close at once
        combo.activated.connect(lambda _=0, c=combo: (self.commitData.emit(c), self.closeEditor.emit(c)))
        self.editor = combo
        combo.destroyed.connect(lambda *_: setattr(self, "editor", None))
        return combo

    def setEditorData(self, editor: QComboBox, index: QModelIndex) -> None:
        editor.setCurrentIndex(max(0, editor.findData(index.data(Qt.EditRole))))

    def setModelData(self, editor: QComboBox, model, index: QModelIndex) -> None:
        peer = index.data(PEER_ROLE)
        tier = editor.currentData()
        if peer is not None and tier and tier != peer["tier"]:
            self.tier_chosen.emit(peer["id"], tier)
