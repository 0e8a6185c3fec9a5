"""The "new training task" form: the options of ``covey ml start``, checked as the user types.

The form never decides what is valid: it asks :class:`core.learning.protocol.TaskSpec`
(pure, no torch) and shows the core's own refusal, so the GUI and the CLI say the
same sentence for the same combination.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QPushButton, QSpinBox, QVBoxLayout)

from core.errors import CoveyError, human
from core.learning.protocol import ATTACKS, MODELS, RULES, TaskSpec

ATTACK_LABELS = {"sign_flip": "sign flip", "noise": "scaled noise", "label_flip": "label flip"}
DATASETS = ("digits", "synthetic")


def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _real(low: float, high: float, value: float, decimals: int, step: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class TrainingForm(QGroupBox):
    """Task options, the Start / Stop buttons and the reason a combination is refused."""

    start_requested = Signal(dict)   # the options for node.service("learning").start_task
    stop_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("New training task", parent)
        defaults = TaskSpec()
        self.model = QComboBox()
        for name in MODELS:
            self.model.addItem({"mlp": "MLP", "cnn": "small CNN"}.get(name, name), name)
        self.dataset = QComboBox()
        for name in DATASETS:
            self.dataset.addItem(name, name)
        self.dataset.setToolTip("The coordinator's held-out set; each worker trains on its own share")
        self.aggregator = QComboBox()
        for rule in RULES.values():   # names, labels and help come from the core's rules table
            self.aggregator.addItem(rule.label, rule.name)
        self.rounds = _spin(1, 10_000, 10, "How many rounds of train-locally-then-aggregate")
        self.epochs = _spin(1, 1000, defaults.epochs, "Local epochs each worker trains per round")
        self.lr = _real(0.0001, 10.0, defaults.lr, 4, 0.01, "Local learning rate")
        self.min_clients = _spin(1, 10_000, defaults.min_clients,
                                 "Accepted updates a round needs; with fewer the round is retried")
        # DP is off at 0: one spin box instead of a checkbox and a spin box
        self.dp_noise = _real(0.0, 1000.0, 0.0, 2, 0.1,
                              "Differential privacy: noise multiplier (σ / clip). Workers clip their "
                              "update and add Gaussian noise; ε is reported each round. 0 = off")
        self.dp_noise.setSpecialValueText("off")
        self.dp_clip = _real(0.001, 1e6, 1.0, 3, 0.1, "Differential privacy: clipping norm of each update")
        self.secure_agg = QCheckBox("Secure aggregation")
        self.secure_agg.setToolTip("Pairwise masks: the coordinator sees only the sum of the updates")
        self.attack = QComboBox()
        self.attack.addItem("none", None)
        for name in ATTACKS:
            self.attack.addItem(ATTACK_LABELS.get(name, name), name)
        self.attack.setToolTip("Simulate attacking workers to watch robust aggregation reject them")
        self.attackers = _spin(0, 10_000, 0, "How many workers attack")

        for index, rule in enumerate(RULES.values()):
            self.aggregator.setItemData(index, rule.help, Qt.ToolTipRole)
        for combo in (self.model, self.dataset, self.aggregator, self.attack):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(5)
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("primary")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("danger")
        self.stop_button.setEnabled(False)
        self.refusal = QLabel()
        self.refusal.setTextFormat(Qt.PlainText)
        self.refusal.setObjectName("error")
        self.refusal.setWordWrap(True)
        self.refusal.setVisible(False)

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        rows = [
            (("Model", self.model), ("Dataset", self.dataset), ("Aggregator", self.aggregator)),
            (("Rounds", self.rounds), ("Epochs", self.epochs), ("Learning rate", self.lr)),
            (("Min. clients", self.min_clients), ("Attack", self.attack), ("Attackers", self.attackers)),
            (("DP noise", self.dp_noise), ("DP clip", self.dp_clip), (None, self.secure_agg)),
        ]
        for r, row in enumerate(rows):
            for c, (label, widget) in enumerate(row):
                if label is None:
                    grid.addWidget(widget, r, 2 * c, 1, 2)
                    continue
                grid.addWidget(QLabel(label), r, 2 * c)
                grid.addWidget(widget, r, 2 * c + 1)
        for c in (1, 3, 5):
            grid.setColumnStretch(c, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refusal, 1)
        buttons.addStretch(0)   # keeps the buttons compact while there is no refusal to show
        buttons.addWidget(self.start_button, 0, Qt.AlignTop)
        buttons.addWidget(self.stop_button, 0, Qt.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addLayout(buttons)

        for combo in (self.model, self.dataset, self.aggregator, self.attack):
            combo.currentIndexChanged.connect(self.check)
        for box in (self.rounds, self.epochs, self.lr, self.min_clients, self.dp_noise, self.dp_clip,
                    self.attackers):
            box.valueChanged.connect(self.check)
        self.secure_agg.toggled.connect(self.check)
        self.start_button.clicked.connect(self._start_clicked)
        self.stop_button.clicked.connect(self.stop_requested)
        self._busy = False
        self._running = False
        self.check()

    # -- options ----------------------------------------------------------------
    def options(self) -> dict:
        """The form as ``start_task`` options (validation follows the CLI's default)."""
        dp = self.dp_noise.value() > 0
        secure = self.secure_agg.isChecked()
        options = {
            "model": self.model.currentData(), "dataset": self.dataset.currentData(),
            "aggregator": self.aggregator.currentData(), "rounds": self.rounds.value(),
            "epochs": self.epochs.value(), "lr": round(self.lr.value(), 6),
            "min_clients": self.min_clients.value(), "secure_agg": secure,
            # as `covey ml start`: per-update validation is on unless secure aggregation or DP hide it
            "validate": not (secure or dp),
        }
        if dp:
            options["dp_noise"] = self.dp_noise.value()
            options["dp_clip"] = self.dp_clip.value()
        if self.attack.currentData() is not None or self.attackers.value():
            options["attack"] = self.attack.currentData()
            options["attackers"] = self.attackers.value()
        return options

    def check(self, *_) -> str:
        """Show why the core would refuse the current options ('' when it would not)."""
        self.dp_clip.setEnabled(self.dp_noise.value() > 0)
        try:
            TaskSpec.from_dict(self.options())
            why = ""
        except CoveyError as exc:
            why = human(exc)
        self.show_refusal(why)
        return why

    def show_refusal(self, text: str) -> None:
        self.refusal.setText(text)
        self.refusal.setVisible(bool(text))
        self._update_buttons()

    # -- buttons ----------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        """While a start request is in flight."""
        self._busy = busy
        self._update_buttons()

    def set_running(self, running: bool) -> None:
        """Whether the task this tab follows is running (Stop applies to it)."""
        self._running = running
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.start_button.setEnabled(not self._busy and not self._running and not self.refusal.text())
        self.stop_button.setEnabled(self._running)

    def _start_clicked(self) -> None:
        if not self.check():
            self.start_requested.emit(self.options())
