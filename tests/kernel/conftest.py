from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.sandbox_host import SandboxHost

pytestmark = pytest.mark.kernel


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="kernel tests need root (they run in sandbox namespaces)")
        for item in items:
            if "tests/kernel" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture
def host() -> Iterator[SandboxHost]:
    h = SandboxHost()
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def outside() -> Iterator[SandboxHost]:
    """A second sandbox host, for traffic that comes from or goes to another machine."""
    h = SandboxHost("outside")
    try:
        yield h
    finally:
        h.close()
