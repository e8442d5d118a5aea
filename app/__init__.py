"""Composition root: command line, configuration, wiring."""
