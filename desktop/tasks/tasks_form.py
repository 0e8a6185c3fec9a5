"""The "run a task" form: a peer, a task type, and one field per argument of that type.

The fields come from the type's argument declarations (``node.service("delegation").types()``,
built from :data:`core.delegation.protocol.ARGS`); text fields are read with the same
:func:`core.delegation.protocol.parse_value` the CLI uses, and the task type's own check in
the core decides what is valid, so the tab and `covey tasks run` refuse the same input with
the same sentence.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QSizePolicy, QSpinBox, QStackedWidget,
                               QVBoxLayout, QWidget)

from core.delegation.protocol import parse_value

from ..style import named

RUN_TIP = "Send the task to the peer; its signed proof is checked when the result comes back"


class ArgsForm(QWidget):
    """The fields of one task type; :meth:`values` -> (arguments, files)."""

    def __init__(self, spec: dict, parent=None):
        super().__init__(parent)
        self.type = spec["type"]
        self.fields: dict[str, QWidget] = {}
        self.browse: dict[str, QPushButton] = {}
        self.kinds: dict[str, str] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for arg in spec["args"]:
            widget, row = self._field(arg, spec.get("datasets") or [])
            named(widget, arg["name"].replace("_", " "), arg["help"])
            self.fields[arg["name"]] = widget
            self.kinds[arg["name"]] = arg["kind"]
            layout.addRow(arg["name"].replace("_", " ") + ("" if not arg["required"] else " *"), row)
        if not spec["args"]:
            layout.addRow(QLabel("no arguments"))

    def _field(self, arg: dict, datasets: list[str]) -> tuple[QWidget, QWidget]:
        kind, default = arg["kind"], arg["default"]
        if kind == "int":
            box = QSpinBox()
            box.setRange(int(arg["lo"]), int(arg["hi"]))
            box.setValue(int(default))
            return box, box
        if kind == "float":
            box = QDoubleSpinBox()
            box.setDecimals(3)
            box.setRange(float(arg["lo"]), min(float(arg["hi"]), 1e6))
            box.setValue(float(default))
            return box, box
        if kind in ("choice", "dataset"):
            box = QComboBox()
            box.setEditable(kind == "dataset")   # the executor's names may differ from ours
            box.addItems(list(arg["choices"]) or datasets)
            if default is not None:
                box.setCurrentText(str(default))
            return box, box
        line = QLineEdit()
        if kind == "floats" and default is not None:
            line.setText(",".join(f"{v:g}" for v in default))
        line.setPlaceholderText({"column": "a feature index, or label", "floats": "comma-separated numbers",
                                 "file": "a .safetensors file"}.get(kind, ""))
        if kind != "file":
            return line, line
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(line, 1)
        button = named(QPushButton("Browse…"), f"Choose the {arg['name']} file", f"Choose {arg['help']}")
        button.clicked.connect(lambda: self._choose(line))
        h.addWidget(button)
        self.browse[arg["name"]] = button
        return line, row

    def _choose(self, line: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model weights", "", "safetensors (*.safetensors);;All files (*)")
        if path:
            line.setText(path)

    def values(self) -> tuple[dict, dict[str, str]]:
        """The arguments as typed values (ValueError naming a field that cannot be read) and
        the file arguments as paths; empty optional text fields are left out."""
        args, files = {}, {}
        for name, widget in self.fields.items():
            kind = self.kinds[name]
            if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                args[name] = widget.value()
            elif isinstance(widget, QComboBox):
                args[name] = widget.currentText().strip()
            elif kind == "file":
                if widget.text().strip():
                    files[name] = widget.text().strip()
            elif widget.text().strip() or kind == "text":
                args[name] = parse_value(_Kind(kind), name, widget.text().strip() if kind != "text" else widget.text())
        return args, files


class _Kind:
    """The one attribute parse_value reads from an argument declaration."""

    def __init__(self, kind: str):
        self.kind = kind


class RunForm(QGroupBox):
    """Peer, type, the type's fields, timeout, HTTP, and Run."""

    run_requested = Signal(str, str, dict, dict, float, bool)   # peer id, type, args, files, timeout, http

    def __init__(self, types: list[dict], parent=None):
        super().__init__("Run a task on a peer", parent)
        self.peer = named(QComboBox(), "Peer", "A peer that holds this node as CORE runs tasks for it")
        self.type = named(QComboBox(), "Task type", "What the peer runs (hover an item for what it does)")
        self.forms = QStackedWidget()
        self.by_type: dict[str, ArgsForm] = {}
        for spec in types:
            self.type.addItem(spec["type"], spec["type"])
            self.type.setItemData(self.type.count() - 1, spec["summary"], 3)  # Qt.ToolTipRole
            form = ArgsForm(spec)
            self.by_type[spec["type"]] = form
            self.forms.addWidget(form)
        self.type.currentIndexChanged.connect(self._type_changed)
        self.summary = QLabel()
        self.summary.setObjectName("hint")
        self.summary.setWordWrap(True)
        self.timeout = named(QDoubleSpinBox(), "Timeout", "Seconds the task may take, waiting included")
        self.timeout.setRange(1, 600)
        self.timeout.setValue(30)
        self.timeout.setSuffix(" s")
        self.http = named(QCheckBox("over plain HTTP (POST /tasks)"), "Send over plain HTTP",
                          "Send the signed request to the peer's HTTP endpoint instead of the encrypted "
                          "connection (the request and the proof are signed either way)")
        self.run_button = named(QPushButton("Run"), "Run the task", RUN_TIP)
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self._run)
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()

        top = QFormLayout()
        top.addRow("Peer", self.peer)
        top.addRow("Task", self.type)
        top.addRow("", self.summary)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Timeout"))
        bottom.addWidget(self.timeout)
        bottom.addWidget(self.http)
        bottom.addStretch(1)
        bottom.addWidget(self.run_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.forms)
        layout.addLayout(bottom)
        layout.addWidget(self.error)
        self._summaries = {spec["type"]: spec["summary"] for spec in types}
        self._type_changed()

    def set_peers(self, peers: list[dict]) -> None:
        """Offer the connected peers (kept selected across redraws)."""
        current = self.peer.currentData()
        self.peer.clear()
        for p in peers:
            self.peer.addItem(f"{p['name'] or p['id'][:12]}  ·  {p['tier']}", p["id"])
        if current is not None and self.peer.findData(current) >= 0:
            self.peer.setCurrentIndex(self.peer.findData(current))
        self.run_button.setEnabled(self.peer.count() > 0)
        self.run_button.setToolTip(RUN_TIP if self.peer.count() else "Connect to a peer first")

    def current_form(self) -> ArgsForm:
        return self.by_type[self.type.currentData()]

    def _type_changed(self, *_) -> None:
        kind = self.type.currentData()
        for name, form in self.by_type.items():   # the stack takes the height of the shown form only
            form.setSizePolicy(QSizePolicy.Preferred,
                               QSizePolicy.Preferred if name == kind else QSizePolicy.Ignored)
        self.forms.setCurrentWidget(self.by_type[kind])
        self.forms.adjustSize()
        self.summary.setText(self._summaries[kind])

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def _run(self) -> None:
        try:
            args, files = self.current_form().values()
        except ValueError as exc:
            self.show_error(f"Cannot run the task: {exc}")
            return
        self.show_error("")
        self.run_requested.emit(self.peer.currentData(), self.type.currentData(), args, files,
                                self.timeout.value(), self.http.isChecked())
