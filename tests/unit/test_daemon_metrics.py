"""The Prometheus text the controller serves."""

from __future__ import annotations

import re
import urllib.request

import pytest

from controller.daemon.metrics import Metrics, exposure_warning, parse_address, serve


def test_text_format_has_help_type_and_samples() -> None:
    m = Metrics()
    m.inc("netctl_reconciles_total", result="ok")
    m.inc("netctl_reconciles_total", result="ok")
    m.inc("netctl_drift_repairs_total", kind="veth")
    m.set("netctl_managed_objects", 1000, kind="container")
    m.observe("netctl_reconcile_duration_seconds", 0.3)
    m.observe("netctl_reconcile_duration_seconds", 2.0)
    text = m.render()
    assert "# TYPE netctl_reconciles_total counter" in text
    assert 'netctl_reconciles_total{result="ok"} 2' in text
    assert 'netctl_drift_repairs_total{kind="veth"} 1' in text
    assert 'netctl_managed_objects{kind="container"} 1000' in text
    assert 'netctl_reconcile_duration_seconds_bucket{le="0.25"} 0' in text
    assert 'netctl_reconcile_duration_seconds_bucket{le="0.5"} 1' in text
    assert 'netctl_reconcile_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "netctl_reconcile_duration_seconds_sum 2.3" in text
    assert "netctl_reconcile_duration_seconds_count 2" in text
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eInf]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line


def test_label_values_are_escaped() -> None:
    m = Metrics()
    m.inc("netctl_failures_total", kind='a"b\\c\nd')
    assert 'kind="a\\"b\\\\c\\nd"' in m.render()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9100", ("127.0.0.1", 9100)), (":9100", ("0.0.0.0", 9100)), ("[::1]:9100", ("::1", 9100)),
])
def test_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9100", "host:", "host:99999", "host:http"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_served_over_http_on_loopback() -> None:
    m = Metrics()
    m.inc("netctl_reconciles_total", result="ok")
    server = serve(m, "127.0.0.1:0")
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert 'netctl_reconciles_total{result="ok"} 1' in r.read().decode()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("text", [":9464", "0.0.0.0:9464", "[::]:9464"])
def test_every_address_is_warned_about(text: str) -> None:
    warning = exposure_warning(text)
    assert warning is not None and "every address" in warning


@pytest.mark.parametrize("text", ["127.0.0.1:9464", "[::1]:9464", "10.0.0.5:9464"])
def test_a_chosen_address_is_not(text: str) -> None:
    assert exposure_warning(text) is None
