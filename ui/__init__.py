"""PySide6 views of the engine (the desk window arrives with the GUI issue)."""
