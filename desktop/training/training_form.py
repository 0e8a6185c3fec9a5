"""The "new training task" form: the options of ``covey ml start``, checked as the user types.

The form never decides what is valid: it asks :class:`core.learning.protocol.TaskSpec`
(pure, no torch) and shows the core's own refusal, worded about the form's fields
instead of the command line's flags (:mod:`desktop.wording`). Under the fields it
says how many eligible workers are connected and how many a round needs.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QSpinBox, QVBoxLayout)

from core.errors import CoveyError, human
from core.learning.protocol import (ATTACKERS_WITHOUT_ATTACK, ATTACKS, MODELS, RULES, SECAGG_AGGREGATOR,
                                    SECURE_AGG_RULES, TaskSpec)

from ..style import named
from ..wording import gui_words
from .field_grid import FieldGrid

ATTACK_LABELS = {"sign_flip": "sign flip", "noise": "scaled noise", "label_flip": "label flip"}
DATASETS = ("digits", "synthetic")
# the command line's flags, as this form names its fields (for the core's refusals)
FIELDS = {"model": "Model", "dataset": "Dataset", "aggregator": "Aggregator", "rounds": "Rounds",
          "epochs": "Epochs", "lr": "Learning rate", "min-clients": "Min. clients", "deadline": "Round deadline",
          "dp-noise": "DP noise", "dp-clip": "DP clip", "secure-agg": "Secure aggregation", "attack": "Attack",
          "attackers": "Attackers"}


def _or(words) -> str:
    """'a, b or c'."""
    words = list(words)
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def _sentences() -> dict[str, str]:
    """The core's refusals this form words better itself: about its fields, not flags."""
    secure = _or(RULES[name].label for name in SECURE_AGG_RULES)
    out = {ATTACKERS_WITHOUT_ATTACK:
           "Attackers is above 0 but Attack is none: choose an attack (" + _or(ATTACK_LABELS.values())
           + "), or set Attackers to 0"}
    for rule in RULES.values():
        if not rule.secure_agg:
            out[SECAGG_AGGREGATOR.format(agg=rule.name)] = (
                f"Secure aggregation hides every single update from the coordinator, so it cannot run "
                f"{rule.label}, which must look at each update: choose {secure} as the Aggregator, "
                f"or turn Secure aggregation off")
    return out


SENTENCES = _sentences()


def in_form_words(text: str) -> str:
    """A refusal of the core as this form says it."""
    return gui_words(text, FIELDS, SENTENCES)


def _spin(low: int, high: int, value: int, name: str, tip: str) -> QSpinBox:
    box = named(QSpinBox(), name, tip)
    box.setRange(low, high)
    box.setValue(value)
    return box


def _real(low: float, high: float, value: float, decimals: int, step: float, name: str, tip: str) -> QDoubleSpinBox:
    box = named(QDoubleSpinBox(), name, tip)
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    return box


class TrainingForm(QGroupBox):
    """Task options, the Start / Stop buttons and the reason a combination is refused."""

    start_requested = Signal(dict)   # the options for node.service("learning").start_task
    stop_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("New training task", parent)
        defaults = TaskSpec()
        self.model = named(QComboBox(), "Model", "The model every worker trains: a small MLP or a small CNN")
        for name in MODELS:
            self.model.addItem({"mlp": "MLP", "cnn": "small CNN"}.get(name, name), name)
        self.dataset = named(QComboBox(), "Dataset",
                             "The coordinator's held-out set; each worker trains on its own share")
        for name in DATASETS:
            self.dataset.addItem(name, name)
        self.aggregator = named(QComboBox(), "Aggregator",
                                "How the workers' updates are combined each round (hover an item for its help)")
        for rule in RULES.values():   # names, labels and help come from the core's rules table
            self.aggregator.addItem(rule.label, rule.name)
        self.rounds = _spin(1, 10_000, 10, "Rounds", "How many rounds of train-locally-then-aggregate")
        self.epochs = _spin(1, 1000, defaults.epochs, "Epochs", "Local epochs each worker trains per round")
        self.lr = _real(0.0001, 10.0, defaults.lr, 4, 0.01, "Learning rate", "Local learning rate")
        self.min_clients = _spin(1, 10_000, defaults.min_clients, "Minimum clients",
                                 "Accepted updates a round needs; with fewer the round is retried")
        self.deadline = _spin(1, 86_400, int(defaults.deadline), "Round deadline",
                              "Seconds a round waits for enough workers and their updates; "
                              "then it is retried")
        self.deadline.setSuffix(" s")
        # DP is off at 0: one spin box instead of a checkbox and a spin box
        self.dp_noise = _real(0.0, 1000.0, 0.0, 2, 0.1, "Differential privacy noise",
                              "Differential privacy: noise multiplier (σ / clip). Workers clip their "
                              "update and add Gaussian noise; ε is reported each round. 0 = off")
        self.dp_noise.setSpecialValueText("off")
        self.dp_clip = _real(0.001, 1e6, 1.0, 3, 0.1, "Differential privacy clip",
                             "Differential privacy: clipping norm of each update")
        self.secure_agg = named(QCheckBox("Secure aggregation"), "Secure aggregation",
                                "Pairwise masks: the coordinator sees only the sum of the updates")
        self.attack = named(QComboBox(), "Attack",
                            "Simulate attacking workers to watch robust aggregation reject them")
        self.attack.addItem("none", None)
        for name in ATTACKS:
            self.attack.addItem(ATTACK_LABELS.get(name, name), name)
        self.attackers = _spin(0, 10_000, 0, "Attackers", "How many workers attack (the first ones to join)")

        for index, rule in enumerate(RULES.values()):
            self.aggregator.setItemData(index, rule.help, Qt.ToolTipRole)
        for combo in (self.model, self.dataset, self.aggregator, self.attack):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(5)
        self.start_button = named(QPushButton("Start training"), "Start training",
                                  "Start a task with these options and invite the eligible workers")
        self.start_button.setObjectName("primary")
        self.stop_button = named(QPushButton("Stop"), "Stop training", "Stop the task shown below")
        self.stop_button.setObjectName("danger")
        self.stop_button.setEnabled(False)
        self.refusal = QLabel()
        self.refusal.setTextFormat(Qt.PlainText)
        self.refusal.setObjectName("error")
        self.refusal.setWordWrap(True)
        self.refusal.setVisible(False)
        self.workers_line = QLabel()   # how many workers could take part now, and how many a round needs
        self.workers_line.setTextFormat(Qt.PlainText)
        self.workers_line.setObjectName("hint")
        self.workers_line.setWordWrap(True)
        self._eligible = 0

        self.fields = FieldGrid([
            ("Model", self.model), ("Dataset", self.dataset), ("Aggregator", self.aggregator),
            ("Rounds", self.rounds), ("Epochs", self.epochs), ("Learning rate", self.lr),
            ("Min. clients", self.min_clients), ("Round deadline", self.deadline), (None, self.secure_agg),
            ("DP noise", self.dp_noise), ("DP clip", self.dp_clip), ("Attack", self.attack),
            ("Attackers", self.attackers),
        ])
        buttons = QHBoxLayout()
        buttons.addWidget(self.refusal, 1)
        buttons.addStretch(0)   # keeps the buttons compact while there is no refusal to show
        buttons.addWidget(self.start_button, 0, Qt.AlignTop)
        buttons.addWidget(self.stop_button, 0, Qt.AlignTop)
        layout = QVBoxLayout(self)
        layout.addWidget(self.fields)
        layout.addWidget(self.workers_line)
        layout.addLayout(buttons)

        for combo in (self.model, self.dataset, self.aggregator, self.attack):
            combo.currentIndexChanged.connect(self.check)
        for box in (self.rounds, self.epochs, self.lr, self.min_clients, self.deadline, self.dp_noise,
                    self.dp_clip, self.attackers):
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
            "min_clients": self.min_clients.value(), "deadline": float(self.deadline.value()),
            "secure_agg": secure,
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
            why = in_form_words(human(exc))
        self.show_refusal(why)
        self._show_workers()
        return why

    def needed(self) -> int:
        """Workers a round of the task on the form needs (Min. clients; 3 with secure aggregation)."""
        spec = TaskSpec(min_clients=self.min_clients.value(), secure_agg=self.secure_agg.isChecked())
        return spec.round_minimum

    def set_eligible(self, count: int) -> None:
        """How many connected peers may work on a new task (the learning service's view)."""
        self._eligible = count
        self._show_workers()

    def _show_workers(self) -> None:
        count, needed = self._eligible, self.needed()
        text = f"{count} eligible worker{'s' if count != 1 else ''} connected; a round needs {needed}"
        if count < needed:
            why = " (Min. clients" + (", and at least 3 with secure aggregation)" if needed > self.min_clients.value()
                                      else ")")
            text += f"{why}: connect more CORE or SANDBOX peers, or lower Min. clients."
        else:
            text += "."
        self.workers_line.setText(text)
        self.workers_line.setObjectName("hint" if count >= needed else "error")
        self.workers_line.style().unpolish(self.workers_line)
        self.workers_line.style().polish(self.workers_line)

    def show_refusal(self, text: str) -> None:
        text = in_form_words(text)
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
