"""Fuzzed manifests through the loader: each is accepted, or rejected with netctl's own error
carrying the file and a line; nothing else may escape (no raw Python exception).

The generators are in tests/fuzz.py: hostile mutations (wrong types, missing and extra keys,
out-of-range numbers, bad CIDRs and addresses, overlaps and duplicates, huge strings,
unicode and control characters in every name field, newlines, YAML bombs and tags, bytes
that are not UTF-8) and valid variations, which must all be accepted. CI runs a fixed-seed
2,000 + 500 cases; `NETCTL_FUZZ_CASES=50000 ./test.sh tests/unit/test_fuzz_load.py` is the
long mode. tests/kernel/test_fuzz_apply.py applies a sample of both in a sandbox.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from controller import load
from controller.documents import build
from controller.errors import ManifestError, UserError
from controller.model import Allocations
from controller.resolve import HostFacts, resolve
from tests.fuzz import manifests, variations

CASES = int(os.environ.get("NETCTL_FUZZ_CASES", "2000"))
FUZZ = settings(max_examples=CASES, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@FUZZ
@given(manifests())
def test_every_manifest_is_accepted_or_refused_with_its_place(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        docs = load.parse_paths([str(path)])
        spec = build(docs)
        resolve(spec, Allocations(), HostFacts(), "now")
    except ManifestError as exc:
        assert exc.problems and all(p.file == str(path) for p in exc.problems), exc.problems
        assert all(p.line > 0 or not p.path for p in exc.problems), exc.problems
    except UserError as exc:  # refused after validation: must still say something readable
        assert str(exc), exc


@settings(FUZZ, max_examples=max(CASES // 4, 100))
@given(variations())
def test_every_valid_variation_is_accepted_and_resolves(tmp_path: Path, data: bytes) -> None:
    """The other half: valid input is never refused (tests/kernel/test_fuzz_apply.py applies a
    sample of these)."""
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        resolve(build(load.parse_paths([str(path)])), Allocations(), HostFacts(), "now")
    except (ManifestError, UserError) as exc:
        raise AssertionError(f"{exc}\n{data.decode()}") from exc
