"""The fuzz suite's sandbox sample: generated manifests (tests/fuzz.py) through the real CLI.

Every case is either accepted, and then applies (plan empty afterwards) and deletes leaving
nothing behind, or refused with exit 2 and `error: FILE:LINE`, changing nothing. The loader
half runs thousands of cases in tests/unit/test_fuzz_load.py; this half costs a second a case,
so it takes a fixed-seed sample: valid variations, and hostile mutations (of which some
happen to be valid: those apply too).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz import manifests, variations
from tests.kernel.test_crash_campaign import assert_nothing_left
from tests.sandbox_host import SandboxHost

CASES = int(os.environ.get("NETCTL_FUZZ_APPLY_CASES", "16"))
SAMPLE = settings(max_examples=CASES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
seen = {"applied": 0, "refused": 0}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxHost, Path]]:
    h = SandboxHost()
    try:
        yield h, tmp_path_factory.mktemp("fuzz") / "fuzz.yaml"  # the sandbox sees /tmp
    finally:
        h.close()
        print(f"fuzz sample: {seen}")


def applies_or_is_refused(shared: tuple[SandboxHost, Path], data: bytes) -> str:
    host, path = shared
    path.write_bytes(data)
    result = host.netctl("apply", "-f", str(path), check=False)
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode == 2:
        assert result.stderr.startswith(f"error: {path}:"), result.stderr
        assert_nothing_left(host, "refused")
        return "refused"
    assert result.returncode == 0, (result.stderr[-2000:], data.decode(errors="replace"))
    plan = host.netctl("plan", "-f", str(path)).stdout.strip()
    assert plan == "no changes", (plan, data.decode())
    host.netctl("delete", "-f", str(path))
    assert_nothing_left(host, "deleted")
    return "applied"


@SAMPLE
@given(variations())
def test_valid_variations_apply_and_leave_nothing(shared: tuple[SandboxHost, Path], data: bytes) -> None:
    outcome = applies_or_is_refused(shared, data)
    seen[outcome] += 1
    assert outcome == "applied", data.decode()


@settings(SAMPLE, max_examples=CASES // 2)
@given(manifests())
def test_hostile_mutations_apply_or_are_refused(shared: tuple[SandboxHost, Path], data: bytes) -> None:
    seen[applies_or_is_refused(shared, data)] += 1
