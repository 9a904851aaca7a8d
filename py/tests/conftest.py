"""Fixtures: throwaway network namespaces (unique names, deleted at the end even on failure),
with veth pairs inside them standing in for NICs. Nothing touches the host's own namespace."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest

import underlay

_seq = itertools.count()

ROOT = os.geteuid() == 0


def pytest_report_header(config: pytest.Config) -> str:
    if ROOT:
        return "underlay: running as root: kernel tests run in throwaway namespaces"
    return "underlay: NOT ROOT: every kernel test is SKIPPED (run as root for them)"


needs_root = pytest.mark.skipif(not ROOT, reason="needs root (creates network namespaces): SKIPPED")


def unique(prefix: str) -> str:
    """A namespace name no other test or process uses."""
    return f"ulpy-{prefix}-{os.getpid()}-{next(_seq)}"


@pytest.fixture
def netns() -> Iterator[underlay.Netns]:
    """A fresh named namespace, deleted at the end."""
    if not ROOT:
        pytest.skip("needs root (creates network namespaces): SKIPPED")
    with underlay.Netns.create(unique("t")) as ns:
        yield ns


@pytest.fixture
def handle(netns: underlay.Netns) -> underlay.Handle:
    """A handle inside `netns`."""
    return netns.handle()


@pytest.fixture
def nic(handle: underlay.Handle) -> str:
    """A parent NIC inside the test's namespace: one end of a veth pair, up."""
    underlay.Veth.create(handle, "nic0", "nic0p", up=True, peer_up=True)
    return "nic0"


@pytest.fixture
def tmpdir_path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="ulpy-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Spinner:
    """A counter another Python thread keeps raising: it only rises while the GIL is free."""

    count = 0


@contextmanager
def spinning() -> Iterator[Spinner]:
    """Runs a thread that counts up in a loop for the duration of the block."""
    spinner = Spinner()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            spinner.count += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        yield spinner
    finally:
        stop.set()
        t.join()
