"""Unhandled exceptions: logged with their traceback to a file in the user log dir, shown in a
non-blocking dialog (``open()``, never ``exec()``), and the desk keeps running."""

from __future__ import annotations

import logging
import sys
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QMessageBox

log = logging.getLogger("trading_desk.unhandled")


class ErrorReporter(QObject):
    """Where unhandled errors go; the main window connects its log panel and status bar."""

    error = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.dialogs: list[QMessageBox] = []
        self.show_dialogs = True

    def report(self, summary: str, details: str) -> None:
        log.error("%s\n%s", summary, details)
        self.error.emit(summary)
        if not self.show_dialogs or QApplication.instance() is None:
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error", summary)
        box.setInformativeText("The desk keeps running. The details are in the log file.")
        box.setDetailedText(details)
        box.finished.connect(lambda _=0, b=box: self._forget(b))
        self.dialogs.append(box)
        box.open()

    def _forget(self, box: QMessageBox) -> None:
        if box in self.dialogs:
            self.dialogs.remove(box)
        box.deleteLater()


REPORTER: ErrorReporter | None = None


def reporter() -> ErrorReporter:
    global REPORTER
    if REPORTER is None:
        REPORTER = ErrorReporter()
    return REPORTER


def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    details = "".join(traceback.format_exception(kind, exc, tb))
    reporter().report(f"{kind.__name__}: {exc}", details)


def loop_exception_handler(loop: Any, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    message = str(context.get("message", "error in the event loop"))
    if isinstance(exc, BaseException):
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        reporter().report(f"{message}: {type(exc).__name__}: {exc}", details)
    else:
        reporter().report(message, repr(context))


class Installed:
    def __init__(self, handler: logging.Handler | None, previous_hook: Any) -> None:
        self.handler = handler
        self.previous_hook = previous_hook
        self.log_file: Path | None = None

    def uninstall(self) -> None:
        sys.excepthook = self.previous_hook
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()


def install_error_handling(log_dir: Path | None) -> Installed:
    handler: logging.Handler | None = None
    log_file = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / "desk.log"
        handler = RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
    installed = Installed(handler, sys.excepthook)
    installed.log_file = log_file
    sys.excepthook = excepthook
    return installed
