"""PySide6 views of the engine: the desk window, its panels and dialogs (they see the engine only through its ports)."""
