"""The Training tab: start and stop a federated task, watch it live, and work on others' tasks.

It follows one task this node coordinates (the newest, or the one just started)
and redraws on the node's ``ml_round`` / ``ml_state`` events; it never polls.
pyqtgraph is imported the first time the tab is shown (see ``ensure_charts``).
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QFrame, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QScrollArea, QTabWidget,
                               QVBoxLayout, QWidget)
from qasync import asyncSlot

from core.errors import CoveyError

from ..actions import run_action, run_action_now
from ..bridge import Refresh
from ..wording import reworded
from .training_form import TrainingForm, in_form_words
from .training_tables import InvitationsBox, WorkersTable

log = logging.getLogger("covey.desktop.training")
STATE_TEXT = {"running": "running", "done": "finished", "stopped": "stopped", "failed": "failed"}


def eta_text(seconds: float | None) -> str:
    """'about 40 s left', 'about 3 min left', or '' when unknown."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


def waiting_text(view: dict, spec: dict) -> str:
    """Why a running task's round cannot start: too few eligible workers have joined ('' when it can)."""
    if view.get("state") != "running" or view.get("round_open") or "ready" not in view:
        return ""
    ready, needed, not_joined = view["ready"], view["needed"], view.get("not_joined") or 0
    if ready >= needed:
        return ""
    text = (f"Waiting for workers: {ready} eligible worker{'s' if ready != 1 else ''} connected and joined, "
            f"{needed} needed (Min. clients).")
    if not_joined:
        text += (f" {not_joined} more connected peer{'s have' if not_joined != 1 else ' has'} been invited "
                 "and not joined yet (a peer without auto-join presses Join in its Training tab).")
    deadline = spec.get("deadline")
    if deadline:
        text += f" The round is retried every {deadline:g} s (Round deadline) until enough join."
    return text


class _ChartsHolder(QWidget):
    """Where the charts go. It asks for no more than its minimum (it stretches into the room there
    is): the scrolled column takes each part's preferred height as its minimum, and the charts'
    large one squeezed the form's fields to half their height on a narrow window."""

    def sizeHint(self) -> QSize:
        return self.minimumSizeHint()


class _Lower(QTabWidget):
    """The workers | invitations tabs, asking only for their minimum (see :class:`_ChartsHolder`)."""

    def sizeHint(self) -> QSize:
        return self.minimumSizeHint()


class TrainingPanel(QWidget):
    """Renders the learning service and turns clicks into its coroutines."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, learning, parent=None):
        super().__init__(parent)
        self.node = node
        self.learning = learning
        self.task: str | None = None        # the coordinated task on screen
        self.spec: dict | None = None
        self.state: str | None = None
        self.history: list[dict] = []
        self.charts = None                   # TrainingCharts, built when the tab is first shown

        self.form = TrainingForm()
        self.form.start_requested.connect(self.start)
        self.form.stop_requested.connect(self.stop)

        self.title = QLabel("No training task yet: choose the options above and press Start.")
        self.title.setObjectName("hint")
        self.metrics = QLabel()
        self.metrics.setTextFormat(Qt.PlainText)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("no task")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel()
        self.eta.setObjectName("caption")
        self.waiting = QLabel()       # a running task short of workers: how many there are, how many it needs
        self.waiting.setObjectName("error")
        self.waiting.setTextFormat(Qt.PlainText)
        self.waiting.setWordWrap(True)
        self.waiting.hide()
        self.detail = QLabel()        # retries and errors: why the task is not moving
        self.detail.setTextFormat(Qt.PlainText)
        self.detail.setWordWrap(True)
        self.detail.hide()
        self.charts_holder = _ChartsHolder()
        self.charts_holder.setMinimumHeight(190)
        QVBoxLayout(self.charts_holder).setContentsMargins(0, 4, 0, 0)
        progress_box = QGroupBox("Progress")
        self.title.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.eta)
        progress_layout = QVBoxLayout(progress_box)
        progress_layout.addWidget(self.title)
        progress_layout.addLayout(bar)
        progress_layout.addWidget(self.metrics)
        progress_layout.addWidget(self.waiting)
        progress_layout.addWidget(self.detail)
        progress_layout.addWidget(self.charts_holder, 1)

        self.workers = WorkersTable()
        self.invitations = InvitationsBox()
        self.invitations.join_requested.connect(self.join)
        self.invitations.auto_join_changed.connect(self.set_auto_join)
        self.invitations.set_auto_join(self.learning.auto_join)
        self.invitations_update = Refresh(self.refresh_invitations, self)   # one redraw per burst of events
        self.workers_update = Refresh(self.refresh_workers, self)
        self.lower = _Lower()     # the latest round's workers | this node's invitations
        self.lower.addTab(self.workers, "Workers")
        self.lower.addTab(self.invitations, "Invitations")
        self.lower.setMinimumHeight(170)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 4, 0)
        layout.addWidget(self.form)
        layout.addWidget(progress_box, 1)
        layout.addWidget(self.lower, 1)
        scroll = QScrollArea()       # small screens scroll rather than squeeze the charts
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.scroll = scroll

        newest = max(self.learning.tasks.values(), key=lambda t: t.created, default=None)
        if newest is not None:
            self.follow(newest.id)
        self.refresh_invitations()
        self.refresh_workers()

    # -- charts (lazy) ---------------------------------------------------------------
    def showEvent(self, event) -> None:
        self.ensure_charts()
        super().showEvent(event)

    def ensure_charts(self):
        """Build the charts (importing pyqtgraph) if that has not happened yet."""
        if self.charts is None:
            from .training_charts import TrainingCharts
            self.charts = TrainingCharts()
            self.charts_holder.layout().addWidget(self.charts)
            self._draw_charts()
        return self.charts

    def _draw_charts(self) -> None:
        if self.charts is not None:
            self.charts.show_epsilon(bool(self.spec and self.spec.get("dp_noise") is not None))
            self.charts.show_history(self.history)

    # -- following a task --------------------------------------------------------------
    def follow(self, task: str) -> None:
        """Show ``task`` (one this node coordinates) from its status, then keep it live."""
        try:
            view = self.learning.status(task)
        except CoveyError as exc:
            log.info("cannot show task %s: %s", task, exc)
            return
        self.task = view["task"]
        self.spec = view.get("spec")
        self.history = [dict(h) for h in view.get("history") or []]
        self.detail.hide()
        self._render(view)
        self._show_workers(self.history[-1] if self.history else None)
        self._draw_charts()

    def _render(self, view: dict | None = None) -> None:
        """Progress, state, ETA and the latest metrics of the task on screen."""
        if self.task is None:
            return
        if view is None:
            try:
                view = self.learning.status(self.task)
            except CoveyError as exc:
                log.info("task %s vanished: %s", self.task, exc)
                return
        self.state = view["state"]
        done, total = view.get("round") or 0, view.get("rounds") or 1
        self.progress.setRange(0, total)
        self.progress.setValue(min(done, total))
        self.progress.setFormat(f"Round {done} / {total}")
        spec = self.spec or {}
        self.title.setText(f"Task {self.task} — {STATE_TEXT.get(self.state, self.state)} · "
                           f"{spec.get('model', '?')} on {spec.get('dataset', '?')}, "
                           f"{spec.get('aggregator', '?')}, {view.get('participants', 0)} worker(s)")
        if self.title.objectName() == "hint":
            self.title.setObjectName("trainingTask")
            font = self.title.font()
            font.setBold(True)
            self.title.setFont(font)
            self._repolish(self.title)
        waiting = waiting_text(view, spec)
        self.waiting.setText(waiting)
        self.waiting.setVisible(bool(waiting))
        if waiting:
            self.eta.setText("waiting for workers")
        elif self.state == "running":
            self.eta.setText(eta_text(view.get("eta_seconds")) or "estimating time left…")
        else:
            self.eta.setText(STATE_TEXT.get(self.state, self.state).capitalize())
        parts = []
        if view.get("accuracy") is not None:
            parts.append(f"test accuracy {view['accuracy']:.3f}")
        if view.get("loss") is not None:
            parts.append(f"loss {view['loss']:.4f}")
        if view.get("epsilon") is not None:
            parts.append(f"ε {view['epsilon']:.3f} (δ {spec.get('dp_delta', 1e-5):g})")
        self.metrics.setText(" · ".join(parts))
        if self.state == "failed" and view.get("error"):
            self._show_detail(f"Failed: {view['error']}", error=True)
        self.form.set_running(self.state == "running")

    def _show_detail(self, text: str, error: bool = False) -> None:
        self.detail.setObjectName("error" if error else "hint")
        self._repolish(self.detail)
        self.detail.setText(text)
        self.detail.setVisible(bool(text))

    @staticmethod
    def _repolish(widget) -> None:
        widget.style().unpolish(widget)
        widget.style().polish(widget)

    def _absence(self, peer_id: str, connected: set[str]) -> str:
        record = self.node.peers.get(peer_id)
        if record is not None and record.banned:
            return f"banned (reputation {record.reputation:.2f})"
        return "not in this round" if peer_id in connected else "not in this round (disconnected)"

    def peer_name(self, peer_id: str) -> str:
        record = self.node.peers.get(peer_id)
        return (record.name if record is not None and record.name else None) or peer_id[:12]

    # -- events from the node -------------------------------------------------------------
    def _show_workers(self, record: dict | None) -> None:
        """The round's workers, plus earlier workers missing from it (and why: banned, offline)."""
        if record is not None:
            workers = dict(record.get("workers") or {})
            connected = set(self.node.connected_peers())
            for h in reversed(self.history):
                for peer, entry in (h.get("workers") or {}).items():
                    if peer not in workers:
                        workers[peer] = {"slot": entry.get("slot"), "status": "absent",
                                         "reason": self._absence(peer, connected)}
            record = {**record, "workers": workers}
        self.workers.show_round(record, self.peer_name, self.spec)
        self.lower.setTabText(self.lower.indexOf(self.workers), self.workers.title)

    def on_event_ml_round(self, event) -> None:
        data = event.data
        task = data.get("task")
        if task != self.task:
            if not self._worth_following(task):
                return
            self.follow(task)   # its status already holds this round
            return
        record = {k: v for k, v in data.items() if k not in ("task", "rounds")}
        self.history = [h for h in self.history if h.get("round") != record.get("round")] + [record]
        self.detail.hide()
        self._render()
        self._show_workers(record)
        self._draw_charts()

    def on_event_ml_state(self, event) -> None:
        data = event.data
        if data.get("role") == "worker":
            self.invitations_update.request()
            return
        task = data.get("task")
        if task != self.task:
            if self._worth_following(task):
                self.follow(task)
            return
        if "retry" in data:
            self._show_detail(f"Round {data['retry']} will be retried: {data.get('reason', '')}")
        self._render()

    def _worth_following(self, task) -> bool:
        """A coordinated task replaces the one on screen when that one is not running (or is older)."""
        coordinated = self.learning.tasks.get(task)
        if coordinated is None:
            return False
        current = self.learning.tasks.get(self.task) if self.task else None
        return current is None or current.state != "running" or coordinated.created > current.created

    # -- worker side -----------------------------------------------------------------------
    def refresh_invitations(self) -> None:
        before = self.invitations.pending()
        worker = self.learning.worker
        self.invitations.show_members(list(worker.members.values()), self.peer_name, worker.view)
        pending = self.invitations.pending()
        self.lower.setTabText(self.lower.indexOf(self.invitations),
                              f"Invitations ({pending})" if pending else "Invitations")
        if pending > before:   # a new invitation waits for the user: show it
            self.lower.setCurrentWidget(self.invitations)

    def refresh_workers(self) -> None:
        """Eligible workers (for the form) and the waiting line of the running task: peers came or went."""
        self.form.set_eligible(len(self.learning.eligible_workers()))
        if self.task is not None and self.state == "running":
            self._render()

    def on_event_peer_connected(self, event) -> None:
        self.invitations_update.request()   # coordinator names may have changed
        self.workers_update.request()

    on_event_tier_changed = on_event_peer_connected
    on_event_peer_disconnected = on_event_peer_connected

    # -- actions ---------------------------------------------------------------------------
    @asyncSlot(dict)
    async def start(self, options: dict) -> None:
        def started(view: dict) -> str:
            self.follow(view["task"])
            return f"Training task {view['task']} started: {view['rounds']} rounds"
        # every refusal is shown under the form as well, where the options are
        await run_action(self, reworded(self.learning.start_task(**options), in_form_words),
                         failure="Could not start training",
                         busy=self.form.set_busy, on_error=self.form.show_refusal, success=started)

    @asyncSlot()
    async def stop(self) -> None:
        if self.task is None:
            return
        task = self.task

        def stopped(_) -> str:
            self._render()
            return f"Training task {task} stopped at round {self.progress.value()}"
        await run_action(self, self.learning.stop_task(task), failure=f"Could not stop task {task}",
                         busy=self.form.stop_button,
                         on_error=lambda _: self.form.set_running(self.state == "running"), success=stopped)

    @asyncSlot(str)
    async def join(self, task: str) -> None:
        def joined(view: dict) -> str:
            self.refresh_invitations()
            part = view.get("partition")
            return f"Joined task {task}" + (f" (data partition {part})" if part is not None else "")
        await run_action(self, self.learning.join(task), failure=f"Could not join task {task}",
                         on_error=lambda _: self.refresh_invitations(), success=joined)

    def set_auto_join(self, on: bool) -> None:
        run_action_now(self, lambda: self.learning.set_auto_join(on), failure="Could not change auto-join",
                       on_error=lambda _: self.invitations.set_auto_join(self.learning.auto_join),
                       success="Invitations from trusted peers are joined automatically" if on
                       else "Invitations wait for you to press Join")
