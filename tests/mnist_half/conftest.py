"""Fixtures of the application tests: `run_cli` runs a command as `python -m` would."""

import runpy
import sys

import pytest


@pytest.fixture
def run_cli(monkeypatch):
    """run_cli(name, argv): `python -m mnist_half.<name> *argv` in this process (so that
    monkeypatched library functions and capsys apply); its SystemExit propagates. The
    command module is run, never imported: nothing imports a command."""
    def run(name, argv):
        monkeypatch.setattr(sys, "argv", [f"mnist_half.{name}", *map(str, argv)])
        runpy.run_module(f"mnist_half.{name}", run_name="__main__", alter_sys=True)

    return run
