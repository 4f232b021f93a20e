"""`network ls` and `container ls` as Docker prints them (pure): records, filters, formats.

A record is what a `--format` template sees (`{{.Name}}`, `{{.Driver}}`), with Docker's field
names; `--filter key=value` follows Docker's rules: values of one key are alternatives, keys
all must match; `-q` prints IDs only, `--no-trunc` full IDs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import gotemplate, render
from controller.errors import UserError
from controller.model import ContainerTarget, NetworkTarget, Target

Record = dict[str, Any]
Filters = dict[str, list[str]]

NETWORK_COLUMNS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
CONTAINER_COLUMNS = {"ID": "CONTAINER ID", "Names": "NAMES", "Name": "NAME", "Networks": "NETWORKS",
                     "IPv4": "IPV4", "Ports": "PORTS", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
NETWORK_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
CONTAINER_DEFAULT = "table {{.ID}}\t{{.Names}}\t{{.Networks}}\t{{.IPv4}}\t{{.Ports}}"
NETWORK_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")
CONTAINER_FILTERS = ("id", "name", "label", "network", "publish", "expose")
TRUE, FALSE = ("true", "1"), ("false", "0")


def parse_filters(items: Sequence[str], allowed: Sequence[str]) -> Filters:
    out: Filters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"bad format of filter (expected name=value): {item}")
        if key not in allowed:
            raise UserError(f'invalid filter "{key}" (one of: {", ".join(allowed)})')
        if key == "dangling" and value.lower() not in (*TRUE, *FALSE):
            raise UserError(f'invalid filter "{key}={value}": true or false')
        if key == "type" and value not in ("custom", "builtin"):
            raise UserError(f'invalid filter "type={value}": custom or builtin')
        out.setdefault(key, []).append(value)
    return out


def _labels_match(labels: Mapping[str, str], wanted: list[str]) -> bool:
    """Docker: every `label=` filter must match (key, or key=value)."""
    for w in wanted:
        key, sep, value = w.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _matches(filters: Filters, labels: Mapping[str, str],
             checks: Mapping[str, Callable[[str], bool]]) -> bool:
    """Docker's rule: labels all match; for every other key, one of its values does."""
    if "label" in filters and not _labels_match(labels, filters["label"]):
        return False
    return all(any(checks[k](v) for v in values) for k, values in filters.items() if k != "label")


def _labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# --------------------------------------------------------------------------- networks


def network_records(target: Target, no_trunc: bool = False) -> list[Record]:
    return [{"ID": n.id if no_trunc else n.short_id, "Name": n.name, "Driver": render.driver_shown(n.driver),
             "Scope": n.scope, "IPv6": n.enable_ipv6, "Internal": n.internal,
             "Labels": _labels_text(n.labels), "CreatedAt": n.created}
            for n in sorted(target.networks, key=lambda n: n.name)]


def network_filter(target: Target, filters: Filters) -> Callable[[NetworkTarget], bool]:
    used = {e.network for c in target.containers for e in c.endpoints}

    def keep(n: NetworkTarget) -> bool:
        checks: dict[str, Callable[[str], bool]] = {
            "driver": lambda v: v in (render.driver_shown(n.driver), n.driver),
            "id": lambda v: n.id.startswith(v),
            "name": lambda v: v in n.name,
            "scope": lambda v: n.scope == v,
            "type": lambda v: n.builtin == (v == "builtin"),
            "dangling": lambda v: (not n.builtin and n.name not in used) == (v.lower() in TRUE),
        }
        return _matches(filters, n.labels, checks)

    return keep


def networks(target: Target, filters: Filters, no_trunc: bool = False) -> list[Record]:
    return _kept(network_records(target, no_trunc), target.networks, network_filter(target, filters))


PRUNE_FILTERS = ("label", "label!", "until")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def prune_filter(items: Sequence[str], now: datetime.datetime) -> Callable[[NetworkTarget], bool]:
    """`network prune --filter`: label=, label!= (Docker: the network must not carry it) and
    until= (a Go duration before now, or a timestamp)."""
    wanted: Filters = {}
    for item in items:
        key, sep, value = item.partition("!=") if "!=" in item else item.partition("=")
        key = key + "!" if sep == "!=" else key
        if not sep or key not in PRUNE_FILTERS:
            raise UserError(f'invalid filter "{item}" (one of: label=, label!=, until=)')
        wanted.setdefault(key, []).append(value)
    until = [_instant(v, now) for v in wanted.get("until", [])]

    def keep(n: NetworkTarget) -> bool:
        if "label" in wanted and not _labels_match(n.labels, wanted["label"]):
            return False
        if any(_labels_match(n.labels, [w]) for w in wanted.get("label!", [])):
            return False
        return not until or (bool(n.created) and all(_instant(n.created, now) < u for u in until))

    return keep


def _instant(value: str, now: datetime.datetime) -> datetime.datetime:
    """A Go duration (`24h`, `1h30m`) before `now`, a Unix time, or an RFC 3339 timestamp."""
    if re.fullmatch(r"(\d+(?:\.\d+)?(?:ms|h|m|s))+", value):
        unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        seconds = sum(float(n) * unit[u] for n, u in DURATION.findall(value))
        return now - datetime.timedelta(seconds=seconds)
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return datetime.datetime.fromtimestamp(float(value), datetime.UTC)
    text = value.replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # nanoseconds: Python keeps microseconds
    try:
        instant = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"until={value}: expected a duration (24h, 90m) or a timestamp") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=datetime.UTC)


# --------------------------------------------------------------------------- containers


def container_records(target: Target, no_trunc: bool = False) -> list[Record]:
    return [{"ID": c.id if no_trunc else c.short_id, "Names": c.name, "Name": c.name,
             "Networks": render.networks_shown(c), "IPv4": render.ipv4_shown(c),
             "Ports": render.ports_shown(c.ports), "Labels": _labels_text(c.labels), "CreatedAt": c.created}
            for c in sorted(target.containers, key=lambda c: c.name)]


def container_filter(target: Target, filters: Filters) -> Callable[[ContainerTarget], bool]:
    network_ids = {n.name: n.id for n in target.networks}

    def published(c: ContainerTarget, v: str) -> bool:
        port, _, proto = v.partition("/")
        return any(str(p.host_port) == port and (not proto or p.protocol.value == proto) for p in c.ports)

    def exposed(c: ContainerTarget, v: str) -> bool:
        port, _, proto = v.partition("/")
        ports = [(p.container_port, p.protocol.value) for p in c.ports]
        ports += [(number, protocol.value) for number, protocol in c.expose]
        return any(str(number) == port and (not proto or protocol == proto) for number, protocol in ports)

    def keep(c: ContainerTarget) -> bool:
        checks: dict[str, Callable[[str], bool]] = {
            "id": lambda v: c.id.startswith(v),
            "name": lambda v: v in c.name,
            "network": lambda v: any(e.network == v or network_ids.get(e.network, "").startswith(v)
                                     for e in c.endpoints),
            "publish": lambda v: published(c, v),
            "expose": lambda v: exposed(c, v),
        }
        return _matches(filters, c.labels, checks)

    return keep


def containers(target: Target, filters: Filters, no_trunc: bool = False) -> list[Record]:
    return _kept(container_records(target, no_trunc), target.containers, container_filter(target, filters))


def _kept(records: list[Record], objects: Sequence[Any], keep: Callable[[Any], bool]) -> list[Record]:
    wanted = {o.name for o in objects if keep(o)}
    return [r for r in records if r["Name"] in wanted]


# --------------------------------------------------------------------------- printing


@dataclass(frozen=True)
class Listing:
    """One `ls`: its filter keys, its records and how they print by default."""

    filters: tuple[str, ...]
    select: Callable[[Target, Filters, bool], list[Record]]
    default: str
    columns: Mapping[str, str]


NETWORKS = Listing(NETWORK_FILTERS, networks, NETWORK_DEFAULT, NETWORK_COLUMNS)
CONTAINERS = Listing(CONTAINER_FILTERS, containers, CONTAINER_DEFAULT, CONTAINER_COLUMNS)


def listed(what: Listing, target: Target, filters: Sequence[str], fmt: str | None, quiet: bool,
           no_trunc: bool) -> tuple[list[Record], str]:
    """The records `ls` selects, and its text (`--format table` alone is the default table)."""
    records = what.select(target, parse_filters(filters, what.filters), no_trunc)
    template = None if fmt in (None, "", "table") else fmt
    return records, shown(records, template, what.default, what.columns, quiet)


def shown(records: list[Record], fmt: str | None, default: str, headers: Mapping[str, str],
          quiet: bool = False) -> str:
    """What `ls` prints: IDs (-q), the records through a template (--format), else the table."""
    if quiet:
        return "".join(f"{r['ID']}\n" for r in records)
    template = fmt or default
    if template.startswith("table"):
        return gotemplate.table(template, records, headers)
    return "".join(gotemplate.render(template, r) + "\n" for r in records)
