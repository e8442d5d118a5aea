"""The desk's main window: dock panels (layout kept in QSettings), toolbar, menus, shortcuts.

It knows the engine only through its ports (a DeskContext: EngineView to read, Commander to give
commands). Every command runs as a task through CommandRunner (no slot awaits, no dialog exec());
the engine enforces roles and audits; this window only greys out what a role may not use.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QSystemTrayIcon,
    QToolBar,
    QWidget,
)

from engine.core.commands import (
    Abandon,
    Acknowledge,
    Actor,
    ApproveRetry,
    CancelGroup,
    CloseGroup,
    Command,
    Launch,
    ManualHedge,
    Resolve,
    SetTradingState,
)
from engine.core.groups import GroupSpec
from engine.core.model import TERMINAL_GROUP_STATES, Side
from engine.core.trading_state import TradingState
from engine.runtime.view import ConnectionState
from ui import theme as themes
from ui.bridge import EngineBridge
from ui.commands import CommandRunner
from ui.context import DeskContext
from ui.dialogs.confirm import ConfirmDialog
from ui.dialogs.launch import LaunchDialog
from ui.dialogs.manual_hedge import ManualHedgeDialog
from ui.dialogs.resolve import ResolveDialog
from ui.dialogs.why import WhyDialog
from ui.enable import enable
from ui.errors import reporter
from ui.models.columns import AGE_COLUMN, TERMINAL_STATES
from ui.models.table import ROW_ROLE
from ui.panels.chain import ChainPanel
from ui.panels.charts import ChartsPanel
from ui.panels.detail import GroupDetailPanel
from ui.panels.escalations import EscalationsPanel
from ui.panels.groups import GroupsPanel
from ui.panels.intents import IntentsPanel
from ui.panels.log import LogPanel
from ui.panels.positions import PositionsPanel
from ui.panels.tree import HedgeTreePanel
from ui.panels.why_menu import install_why
from ui.reader import JournalReader
from ui.status import DeskStatusBar
from ui.viewmodels.confirm import cancel_lines, close_lines, manual_hedge_plan, retry_lines, working
from ui.viewmodels.desk import Changes, Notice
from ui.viewmodels.enablement import desk_actions, group_actions
from ui.viewmodels.metrics import MetricsSampler
from ui.viewmodels.rows import EscalationRow

LAYOUT_VERSION = 4  # 2: the Positions panel; 3: the Option chain; 4: limit and trigger columns
HALT_SHORTCUT = "Ctrl+Shift+H"
HALT_STYLE = "QToolButton { background: #b3261e; color: white; font-weight: bold; padding: 2px 14px; }"
BANNERS = {
    "HALTED": (
        "TRADING HALTED — no new orders are sent; cancels still pass. Risk staff resume (Ctrl+Shift+R).",
        "QLabel { background: #b3261e; color: white; font-weight: bold; font-size: 14pt; padding: 4px; }",
    ),
    "REDUCING": (
        "REDUCING ONLY — only exposure-reducing orders (exits, hedges) are sent; no new groups.",
        "QLabel { background: #ffbf47; color: #101010; font-weight: bold; font-size: 13pt; padding: 4px; }",
    ),
}
ACTION_TIPS = {
    "launch": "Launch a group (Ctrl+N)",
    "halt": "Kill switch: no new orders; cancels pass (Ctrl+Shift+H)",
    "reduce": "REDUCING: only exposure-reducing orders (exits, hedges) go out (Ctrl+Shift+D)",
    "resume": "Back to ACTIVE trading (Ctrl+Shift+R)",
    "cancel": "Cancel the group's working orders; passes even when HALTED (Ctrl+Shift+C)",
    "close": "Exit a HEDGED group: the short bought back first, then the hedge sold (Ctrl+Shift+X)",
}


def open_settings(ini_file: Path | None) -> QSettings:
    if ini_file is not None:
        return QSettings(str(ini_file), QSettings.Format.IniFormat)
    return QSettings("trading-desk", "trading-desk")


class MainWindow(QMainWindow):
    def __init__(self, context: DeskContext, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context, self.settings = context, settings
        self.view, self.commander = context.view, context.commander
        self.actor: Actor = context.actor
        self.setWindowTitle(f"Trading Desk — {self.actor.os_user} ({self.actor.role.value})")
        self.fit_to_screen(first_start=True)
        self.reader: JournalReader | None = None
        self.bridge: EngineBridge | None = None
        self.runner = CommandRunner(self)
        self.launch_wall_ms: dict[str, int] = {}
        self.finished_wall_ms: dict[str, int] = {}
        self.sampler = MetricsSampler()
        self._t0 = time.monotonic()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._detail_task: asyncio.Task[None] | None = None
        self._detail_again = False
        self.dialogs: list[Any] = []
        self.open_escalations = 0
        self.tray: QSystemTrayIcon | None = None
        self.quit_confirmed = False  # set once the person confirmed quitting with orders working
        self._shown_once = False

    async def start(self) -> None:
        """Open the desk's read connection, build the panels, seed them from the journal, run."""
        self.reader = await JournalReader.open(self.context.journal_path)
        self.launch_wall_ms.update(await self.reader.launch_wall_ms())
        self.finished_wall_ms.update(await self.reader.finished_wall_ms())
        self.bridge = EngineBridge(self.view, self.reader, parent=self)
        self.groups = GroupsPanel(
            self.launch_wall_ms,
            self.context.catalog,
            lambda gid: self.positions.group_pnl(gid),
            finished_wall_ms=self.finished_wall_ms,
        )
        self.detail = GroupDetailPanel(self.reader)
        self.intents = IntentsPanel()
        self.tree = HedgeTreePanel()
        self.escalations = EscalationsPanel(self.actor.role)
        self.charts = ChartsPanel(self.sampler)
        self.positions = PositionsPanel(self.reader, self.context.catalog)
        self.chain = ChainPanel(
            self.context.catalog,
            self.view.quote,
            self.view.watch_quotes,
            self.context.margin_model.underlying_ref_paise,
        )
        self.log = LogPanel()
        self.status = DeskStatusBar(self.view, self.actor, str(self.context.journal_path))
        self.setStatusBar(self.status)
        self.docks: dict[str, QDockWidget] = {}
        for name, title, widget in (
            ("groups", "Order groups", self.groups),
            ("detail", "Group detail", self.detail),
            ("intents", "Intent journal", self.intents),
            ("tree", "Hedge recursion tree", self.tree),
            ("escalations", "Escalations", self.escalations),
            ("charts", "Charts", self.charts),
            ("log", "Log", self.log),
            ("positions", "Positions", self.positions),
            ("chain", "Option chain", self.chain),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{name}")
            dock.setWidget(widget)
            self.docks[name] = dock
        self._default_layout()
        self.default_state = self.saveState(LAYOUT_VERSION)
        self._build_actions()
        self._connect()
        self.restore_layout()
        themes.apply_theme(str(self.settings.value("theme", self.context.theme)))
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(self.windowIcon(), self)
            self.tray.show()
        await self.bridge.seed()
        self.bridge.start()
        self._slow = QTimer(self)
        self._slow.setInterval(500)
        self._slow.timeout.connect(self._every_half_second)
        self._slow.start()

    # --- layout ---------------------------------------------------------------------------------

    def _default_layout(self) -> None:
        area = Qt.DockWidgetArea
        for dock in self.docks.values():
            dock.setFloating(False)
            dock.show()
        self.addDockWidget(area.TopDockWidgetArea, self.docks["groups"])
        self.addDockWidget(area.TopDockWidgetArea, self.docks["detail"])
        self.addDockWidget(area.BottomDockWidgetArea, self.docks["escalations"])
        self.addDockWidget(area.BottomDockWidgetArea, self.docks["tree"])
        self.addDockWidget(area.BottomDockWidgetArea, self.docks["charts"])
        self.tabifyDockWidget(self.docks["detail"], self.docks["intents"])
        self.tabifyDockWidget(self.docks["charts"], self.docks["log"])
        self.tabifyDockWidget(self.docks["charts"], self.docks["positions"])
        self.tabifyDockWidget(self.docks["detail"], self.docks["chain"])
        self.docks["detail"].raise_()
        self.docks["positions"].raise_()
        vertical, horizontal = Qt.Orientation.Vertical, Qt.Orientation.Horizontal
        w, h = max(self.width(), 800), max(self.height(), 600)  # shares of the window, whatever the screen
        self.resizeDocks([self.docks["groups"], self.docks["escalations"]], [h * 6 // 10, h * 4 // 10], vertical)
        self.resizeDocks([self.docks["groups"], self.docks["detail"]], [w // 2, w // 2], horizontal)
        self.resizeDocks(
            [self.docks["escalations"], self.docks["tree"], self.docks["charts"]],
            [w * 33 // 100, w * 27 // 100, w * 40 // 100],
            horizontal,
        )

    def restore_default_layout(self) -> None:
        self.restoreState(self.default_state, LAYOUT_VERSION)
        self.settings.remove("layout/state")
        self.settings.remove("layout/geometry")

    def restore_layout(self) -> bool:
        state, geometry = self.settings.value("layout/state"), self.settings.value("layout/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        restored = isinstance(state, QByteArray) and self.restoreState(state, LAYOUT_VERSION)
        self.fit_to_screen()  # saved on another monitor, or a bigger one: brought back onto this one
        return restored

    def fit_to_screen(self, *, first_start: bool = False) -> None:
        """Size the window to the screen's available area on a first start; otherwise keep its
        size and place but clamp both to the screen it is on (1366×768 laptops included)."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        if first_start:
            self.setGeometry(area)
            return
        frame = self.frameGeometry()
        extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
        width = min(self.width(), area.width() - extra_w)
        height = min(self.height(), area.height() - extra_h)
        self.resize(width, height)
        # onto the screen; a window wider than it (its panels' minimum) starts at its left/top edge
        x = max(area.x(), min(frame.x(), area.right() - width - extra_w + 1))
        y = max(area.y(), min(frame.y(), area.bottom() - height - extra_h + 1))
        self.move(x, y)

    def save_layout(self) -> None:
        self.settings.setValue("layout/state", self.saveState(LAYOUT_VERSION))
        self.settings.setValue("layout/geometry", self.saveGeometry())
        self.settings.sync()

    # --- actions --------------------------------------------------------------------------------

    def _action(self, text: str, slot: Any, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setToolTip(f"{tip or text} ({shortcut})" if shortcut else tip or text)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.launch_action = self._action("Launch group…", self.open_launch_dialog, "Ctrl+N")
        self.halt_action = self._action("HALT", self.halt, HALT_SHORTCUT, "Kill switch: no new orders; cancels pass")
        self.halt_action.setObjectName("haltAction")
        self.reduce_action = self._action(
            "Reduce only", self.reduce, "Ctrl+Shift+D", "REDUCING: only exposure-reducing orders (exits, hedges) go out"
        )
        self.resume_action = self._action("Resume trading", self.request_resume, "Ctrl+Shift+R")
        self.cancel_action = self._action("Cancel orders", self._cancel_selected, "Ctrl+Shift+C")
        self.close_action = self._action("Close group", self._close_selected, "Ctrl+Shift+X")
        self.theme_action = self._action("Toggle dark/light theme", self.toggle_theme, "Ctrl+Shift+T")
        self.layout_action = self._action("Restore default layout", self.restore_default_layout)
        quit_action = self._action("Quit", self.close, "Ctrl+Q")
        toolbar = self.addToolBar("Desk")
        toolbar.setObjectName("deskToolbar")
        self.toolbar = toolbar
        for a in (
            self.launch_action,
            self.halt_action,
            self.reduce_action,
            self.resume_action,
            self.cancel_action,
            self.close_action,
        ):
            toolbar.addAction(a)
        desk = self.menuBar().addMenu("&Desk")
        for a in (self.launch_action, self.halt_action, self.reduce_action, self.resume_action, quit_action):
            desk.addAction(a)
        group = self.menuBar().addMenu("&Group")
        group.addAction(self.cancel_action)
        group.addAction(self.close_action)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.theme_action)
        view.addAction(self.layout_action)
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        halt_button = toolbar.widgetForAction(self.halt_action)
        if halt_button is not None:
            halt_button.setObjectName("haltButton")
            halt_button.setStyleSheet(HALT_STYLE)
        self._build_banner()
        self.set_actor(self.actor)

    def _build_banner(self) -> None:
        """A banner across the window while trading is not ACTIVE: red HALTED, amber REDUCING."""
        self.addToolBarBreak()
        bar = QToolBar("Trading state")
        bar.setObjectName("tradingBanner")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.toggleViewAction().setVisible(False)  # not something to hide by accident
        self.banner = QLabel()
        self.banner.setObjectName("tradingBannerText")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(self.banner)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.banner_bar = bar
        bar.hide()

    def show_trading_state(self, state: TradingState) -> None:
        """The banner, and the state in the title bar."""
        text, style = BANNERS.get(state.value, ("", ""))
        self.banner.setText(text)
        self.banner.setStyleSheet(style)
        self.banner_bar.setVisible(bool(text))
        venue = "PAPER" if self.view.connection() is ConnectionState.IN_PROCESS else "LIVE BROKER"
        self.setWindowTitle(f"Trading Desk — {state.value} — {venue} — {self.actor.os_user} ({self.actor.role.value})")

    def set_actor(self, actor: Actor) -> None:
        """Who gives commands from this window (the --role at start; tests switch it)."""
        self.actor = actor
        self.escalations.set_role(actor.role)
        self.status.set_actor(actor)
        self.update_actions()

    def update_actions(self) -> None:
        """Every action enabled only when it can succeed for this role and this selection, with a
        tooltip saying why not (the engine enforces regardless)."""
        role, state = self.actor.role, self.view.trading_state
        self.show_trading_state(state)
        desk = desk_actions(role, state)
        for name, action in (
            ("launch", self.launch_action),
            ("halt", self.halt_action),
            ("reduce", self.reduce_action),
            ("resume", self.resume_action),
        ):
            enable(action, desk[name], ACTION_TIPS[name])
        gid = self.groups.selected_group()
        row = self.groups.model.row(gid) if gid else None
        group = group_actions(role, state, row)
        for name, targets in (
            ("cancel", (self.cancel_action, self.groups.cancel_button)),
            ("close", (self.close_action, self.groups.close_button)),
        ):
            for target in targets:
                enable(target, group[name], ACTION_TIPS[name])
        self.escalations.update_buttons()

    def _connect(self) -> None:
        assert self.bridge is not None
        self.bridge.changes.connect(self._apply_changes)
        self.bridge.notice.connect(self.notify)
        self.bridge.escalations_opened.connect(self._escalations_opened)
        self.runner.finished.connect(self._command_finished)
        self.groups.group_selected.connect(self._group_selected)
        self.groups.cancel_requested.connect(self.request_cancel)
        self.groups.close_requested.connect(self.request_close)
        self.escalations.action_requested.connect(self.escalation_action)
        reporter().error.connect(self._reported)
        self.chain.spread_picked.connect(self.launch_from_chain)
        self.intents.group.textChanged.connect(lambda text: None if text.strip() else self.tree.focus_group(None))
        credit = [c.title for c in self.groups.model.columns].index("Credit")
        self.positions.loaded.connect(lambda: self._repaint_group_pnl(credit))
        self.positions.loaded.connect(self._sample_trading)
        order_at = lambda i: getattr(i.data(ROW_ROLE), "client_order_id", None)  # noqa: E731
        install_why(self.intents.view, order_at, self.why)
        install_why(self.detail.orders_view, order_at, self.why)
        install_why(self.escalations.view, lambda i: f"E{i.data(ROW_ROLE).escalation_id}", self.why)
        install_why(self.tree.view, lambda i: getattr(self.tree.model.node_at(i), "node_id", None), self.why)

    # --- live updates -------------------------------------------------------------------------

    def _apply_changes(self, changes: Changes) -> None:
        now_ms = time.time_ns() // 1_000_000
        for g in changes.groups:
            self.launch_wall_ms.setdefault(g.group_id, now_ms)
            if g.state in TERMINAL_STATES:
                self.finished_wall_ms.setdefault(g.group_id, now_ms)
        if changes.groups:
            self.groups.model.apply(changes.groups)
            self.update_actions()
        if changes.intents:
            self.intents.model.apply(changes.intents)
        if changes.nodes:
            self.tree.model.apply(changes.nodes)
        if changes.escalations:
            self.escalations.model.apply(changes.escalations)
            self._update_escalation_title()
        selected = self.groups.selected_group()
        if selected and selected in changes.touched_groups:
            self._load_detail()

    def _update_escalation_title(self) -> None:
        assert self.bridge is not None
        self.open_escalations = self.bridge.desk.open_escalation_count()
        suffix = f" ({self.open_escalations})" if self.open_escalations else ""
        self.docks["escalations"].setWindowTitle(f"Escalations{suffix}")

    def _escalations_opened(self, rows: list[EscalationRow]) -> None:
        QApplication.beep()
        text = "; ".join(f"#{r.escalation_id} {r.kind} {r.group_id}" for r in rows)
        if self.tray is not None:
            self.tray.showMessage("Escalation", text, QSystemTrayIcon.MessageIcon.Warning, 10_000)
        self.notify(Notice("warning", f"new escalation: {text}"))

    def _load_detail(self) -> None:
        if self._detail_task is not None:
            self._detail_again = True  # coalesce: one more load after the one in flight
            return
        self._detail_task = asyncio.ensure_future(self._detail())

    async def _detail(self) -> None:
        assert self.bridge is not None
        try:
            while True:
                self._detail_again = False
                gid = self.groups.selected_group()
                if gid is None:
                    return
                await self.detail.show_group(self.bridge.desk.groups.get(gid), self.bridge.desk.intents_of(gid))
                if not self._detail_again:
                    return
        except Exception as exc:
            self.notify(Notice("error", f"could not load group detail: {exc}"))
        finally:
            self._detail_task = None

    def _every_half_second(self) -> None:
        assert self.bridge is not None
        self.status.refresh()
        self.update_actions()  # the trading state and group states move under the buttons
        self.groups.model.touch_column(AGE_COLUMN)
        t = time.time()  # clock time on the charts' axes (display only)
        self.sampler.sample(
            t,
            self.view.event_count(),
            self.bridge.desk.uncovered_short_qty(),
            self.view.clock_offset_ms(),
            self.view.commit_latency_us(),
        )
        if self.docks["charts"].isVisible():
            self.charts.redraw()

    def notify(self, notice: Notice) -> None:
        self.update_actions()  # a notice follows what changed: the trading state, an escalation
        self.log.add(notice.level, notice.text)
        # the newest message replaces the one before (every one stays in the Log tab), so an
        # error is gone once the next attempt says it succeeded
        self.status.show_message(notice.level, notice.text)

    def _reported(self, text: str) -> None:
        self.notify(Notice("error", text))

    def _command_finished(self, label: str, ok: bool, message: str) -> None:
        self.notify(Notice("info" if ok else "error", message))

    # --- commands ---------------------------------------------------------------------------

    def _group_selected(self, group_id: str) -> None:
        """A group selected: its detail, and the hedge tree and intent journal filtered to it
        (clear the journal's group filter to see every group again)."""
        self.update_actions()
        self._load_detail()
        self.tree.focus_group(group_id or None)
        self.intents.group.setText(group_id)

    def _sample_trading(self) -> None:
        """The Positions panel read the journal's P&L: the trading charts take a point."""
        uncovered: dict[str, float] = {}
        for row in self.groups.model.rows():
            inst = self.context.catalog.get(row.hedge_symbol)
            if inst is None or not inst.lot_size:
                continue
            uncovered[inst.underlying] = (
                uncovered.get(inst.underlying, 0.0) + max(0, -row.net_cover_qty) / inst.lot_size
            )
        selected = self.detail.group_id
        group = self.positions.group_pnl(selected) if selected else None
        self.sampler.sample_trading(
            time.time(),
            self.positions.desk.get("total_paise"),
            None if group is None else group.get("total_paise"),
            uncovered,
        )

    def _repaint_group_pnl(self, credit_column: int) -> None:
        for column in (credit_column, credit_column + 1):  # Credit and P&L
            self.groups.model.touch_column(column)

    def launch_from_chain(self, template: str, underlying: str, risk_strike: int, hedge_strike: int) -> LaunchDialog:
        """A bid or ask clicked in the chain: the launch dialog with that spread filled in."""
        dialog = self.open_launch_dialog()
        dialog.select(template, underlying, risk_strike, hedge_strike, dialog.lots.value())
        return dialog

    def open_launch_dialog(self) -> LaunchDialog:
        view = self.view
        dialog = LaunchDialog(
            self.context.catalog,
            self.context.margin_model,
            self,
            quote=view.quote,
            watch=view.watch_quotes,
            margin_in_use=lambda: sum(
                g.margin_paise for g in view.snapshot().groups.values() if g.state not in TERMINAL_GROUP_STATES
            ),
            precautions=self.context.precautions,
        )
        dialog.launch_requested.connect(self.launch)
        self._keep(dialog)
        dialog.open()
        return dialog

    def execute(self, label: str, command: Command) -> asyncio.Task[Any]:
        """Give ``command`` as a task. It is answered once the engine's step that decided it has
        committed (never after the broker: HALT must not wait behind a slow exchange); what
        follows at the broker reaches the panels as engine events."""
        commander = self.commander
        return self.runner.run(label, lambda: commander.execute(command))

    def launch(self, spec: GroupSpec) -> asyncio.Task[Any]:
        return self.execute(f"launch {spec.group_id}", Launch(spec, self.actor))

    def halt(self) -> asyncio.Task[Any]:
        return self.execute("HALT", SetTradingState(TradingState.HALTED, self.actor))

    def resume(self) -> asyncio.Task[Any]:
        return self.execute("resume trading", SetTradingState(TradingState.ACTIVE, self.actor))

    def reduce(self) -> asyncio.Task[Any]:
        return self.execute("reduce only", SetTradingState(TradingState.REDUCING, self.actor))

    def cancel_group(self, group_id: str) -> asyncio.Task[Any]:
        return self.execute(f"cancel {group_id}", CancelGroup(group_id, self.actor))

    def close_group(self, group_id: str) -> asyncio.Task[Any]:
        return self.execute(f"close {group_id}", CloseGroup(group_id, self.actor))

    def _cancel_selected(self) -> None:
        gid = self.groups.selected_group()
        if gid:
            self.request_cancel(gid)

    def _close_selected(self) -> None:
        gid = self.groups.selected_group()
        if gid:
            self.request_close(gid)

    def confirm(
        self, title: str, headline: str, lines: list[str], action: str, then: Any, *, danger: bool = False
    ) -> ConfirmDialog:
        """Ask first, saying exactly what will be sent; ``then()`` runs only on the person's yes."""
        dialog = ConfirmDialog(title, headline, lines, action, self, danger=danger)
        dialog.confirmed.connect(then)
        self._keep(dialog)
        dialog.open()
        return dialog

    def _intents_of(self, group_id: str) -> list[Any]:
        assert self.bridge is not None
        return self.bridge.desk.intents_of(group_id)

    def request_cancel(self, group_id: str) -> ConfirmDialog:
        lines = cancel_lines(self._intents_of(group_id))
        return self.confirm(
            "Cancel orders",
            f"Cancel every working order of {group_id}? The group will not send more.",
            lines or ["no order is working now: the group is marked cancelled and sends nothing more"],
            "Cancel orders",
            lambda: self.cancel_group(group_id),
        )

    def request_close(self, group_id: str) -> ConfirmDialog:
        return self.confirm(
            "Close group",
            f"Close {group_id}? These orders will be sent, in this order:",
            close_lines(self._intents_of(group_id)),
            "Close group",
            lambda: self.close_group(group_id),
        )

    def request_resume(self) -> ConfirmDialog:
        assert self.bridge is not None
        queued = [e.reason for e in self.bridge.desk.escalations.values() if e.is_open and "Queued" in e.reason]
        return self.confirm(
            "Resume trading",
            f"Resume trading (now {self.view.trading_state.value})? New orders may be sent again.",
            [f"queued, sent at once: {q}" for q in queued] or ["no order is queued behind the kill switch"],
            "Resume trading",
            self.resume,
        )

    def request_approve_retry(self, row: EscalationRow) -> ConfirmDialog:
        assert self.bridge is not None
        orphan = self.bridge.desk.intents.get(row.client_order_id)
        lines = retry_lines(orphan) if orphan is not None else [f"a new attempt of {row.client_order_id}"]
        return self.confirm(
            "Approve retry",
            f"Approve a retry of orphaned intent {row.client_order_id}? This sends:",
            lines,
            "Approve retry",
            lambda: self.execute(
                f"approve retry of {row.client_order_id}", ApproveRetry(row.client_order_id, self.actor)
            ),
        )

    def escalation_action(self, action: str, row: EscalationRow) -> None:
        actor = self.actor
        if action == "acknowledge":
            self.execute(f"acknowledge #{row.escalation_id}", Acknowledge(row.key, actor))
        elif action == "resolve":
            self.open_resolve(row)
        elif action == "manual_hedge":
            self.open_manual_hedge(row)
        elif action == "approve_retry":
            self.request_approve_retry(row)
        elif action == "abandon":
            self.execute(f"abandon {row.client_order_id}", Abandon(row.client_order_id, actor))

    def open_resolve(self, row: EscalationRow) -> ResolveDialog:
        dialog = ResolveDialog(row, self)
        dialog.resolved.connect(
            lambda esc_id, note: self.execute(f"resolve #{esc_id}", Resolve(esc_id, note, self.actor))
        )
        self._keep(dialog)
        dialog.open()
        return dialog

    def open_manual_hedge(self, row: EscalationRow) -> ManualHedgeDialog:
        """Pre-filled with what brings the group's net exposure to zero (ui.viewmodels.confirm)."""
        assert self.bridge is not None
        desk = self.bridge.desk
        plan = manual_hedge_plan(desk.groups.get(row.group_id), row, desk.intents_of(row.group_id))
        catalog = self.context.catalog
        lot = catalog[plan.symbol].lot_size if plan.symbol in catalog else 1
        dialog = ManualHedgeDialog(row.group_id, plan.symbol, Side.BUY.value, plan.qty, lot, self, why=plan.why)
        dialog.confirmed.connect(self._manual_hedge_confirmed)
        dialog.refused.connect(lambda why: self.notify(Notice("error", why)))
        self._keep(dialog)
        dialog.open()
        return dialog

    def _manual_hedge_confirmed(self, group_id: str, symbol: str, side: str, qty: int) -> None:
        self.execute(f"manual hedge {qty} {symbol}", ManualHedge(group_id, symbol, Side(side), qty, self.actor))

    def why(self, ident: str) -> asyncio.Task[WhyDialog | None]:
        """Open the causal chain of an order, hedge node or escalation in a window of its own."""

        async def show() -> WhyDialog | None:
            assert self.reader is not None
            try:
                link = await self.reader.why(ident)
            except Exception as exc:  # not journaled with causes (an old journal), or gone
                self.notify(Notice("error", f"why {ident}: {exc}"))
                return None
            dialog = WhyDialog(link, self)
            self._keep(dialog)
            dialog.show()
            return dialog

        return asyncio.ensure_future(show())

    def toggle_theme(self) -> None:
        theme = "light" if str(self.settings.value("theme", self.context.theme)) == "dark" else "dark"
        self.settings.setValue("theme", theme)
        themes.apply_theme(theme)

    def _keep(self, dialog: Any) -> None:
        self.dialogs.append(dialog)
        dialog.finished.connect(lambda _=0, d=dialog: self.dialogs.remove(d) if d in self.dialogs else None)

    # --- shutdown ---------------------------------------------------------------------------

    def save_screenshot(self, path: Path) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        return bool(self.grab().save(str(path)))

    def _quit_risks(self) -> list[str]:
        if self.bridge is None:
            return []
        orders = working(self.bridge.desk.intents.values())
        open_escalations = self.bridge.desk.open_escalation_count()
        lines = []
        if orders:
            lines.append(f"{len(orders)} order(s) working: they stay at the broker and may still fill")
        if open_escalations:
            lines.append(f"{open_escalations} escalation(s) open")
        return lines

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_once:  # the frame (title bar, borders) is known once shown: clamp with it
            self._shown_once = True
            QTimer.singleShot(0, self.fit_to_screen)

    def closeEvent(self, event: QCloseEvent) -> None:
        risks = [] if self.quit_confirmed else self._quit_risks()
        if risks:
            event.ignore()

            def confirmed() -> None:
                self.quit_confirmed = True
                self.close()

            hosting = "the engine in this window stops deciding until the desk is started again"
            self.confirm("Quit", "Quit the desk?", [*risks, hosting], "Quit", confirmed)
            return
        self.save_layout()
        if not self._closed.done():
            self._closed.set_result(None)
        event.accept()

    async def wait_closed(self) -> None:
        await self._closed

    async def shutdown(self) -> None:
        """Stop refreshing, let running commands finish, close the read connection."""
        if getattr(self, "_slow", None) is not None:
            self._slow.stop()
        await self.runner.drain()
        if self._detail_task is not None:
            await asyncio.gather(self._detail_task, return_exceptions=True)
        chain = getattr(self, "chain", None)
        if chain is not None:
            chain.timer.stop()
        positions = getattr(self, "positions", None)
        if positions is not None:
            positions.timer.stop()
            if positions._task is not None:
                await asyncio.gather(positions._task, return_exceptions=True)
        detail = getattr(self, "detail", None)
        if detail is not None and detail._scrub is not None:
            await asyncio.gather(detail._scrub, return_exceptions=True)
        if self.bridge is not None:
            await self.bridge.close()
        if self.reader is not None:
            await self.reader.close()
            self.reader = None
        if self.tray is not None:
            self.tray.hide()
        if self.bridge is not None:
            reporter().error.disconnect(self._reported)
