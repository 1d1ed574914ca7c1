"""Notices said once per command, however many times the command meets their cause.

A command builds a data module more than once (a fit that resumes checks the
run's data, ``course run`` trains and tests a set's runs in turn), and each one
on the sample set would say the same disclaimer. The command line starts each
command with :func:`new_command`, so two commands run in one process (a
notebook, the tests) each say their notices once. Light on purpose (no torch):
the command line imports it before anything heavy.
"""
from __future__ import annotations

import sys

__all__ = ["say_once", "said_before", "new_command"]

_said: set[str] = set()


def say_once(key: str, text: str, file=None) -> bool:
    """Print ``text`` (to stdout unless ``file``) unless the notice ``key`` was said in this
    command; whether it was printed now."""
    if key in _said:
        return False
    _said.add(key)
    print(text, file=file or sys.stdout, flush=True)
    return True


def said_before(key: str) -> None:
    """Count the notice ``key`` as said in this command without printing it (an earlier command said it)."""
    _said.add(key)


def new_command() -> None:
    """A new command starts: every notice may be said again, once."""
    _said.clear()
