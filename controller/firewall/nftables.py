"""The nftables backend's ruleset (pure): one table, `inet netctl`, whose chains never change;
everything that depends on networks and containers is an element of a set or map.

    forward      filter forward     priority 0     replies, published ports, links, ICC, isolation
    prerouting   nat prerouting     priority -100  local destinations -> published (DNAT)
    output       nat output         priority -100  the same for the host's own connections
    postrouting  nat postrouting    priority 100   hairpin, host-to-container, masquerade
    raw          filter prerouting  priority -300  direct-access drops (Docker 28's holes)

The same semantics as the iptables backend (firewall/render.py), in set lookups instead of
rules per network: publishing port 1,001 adds one element to each of `dnat4`, `published4` and
`hairpin4`; a range of ports mapped to the same ports is one element (of their `range`
twins, interval sets); no chain is rewritten
when a container or network comes or goes. Rules carry a comment with a digest of their text,
so that a rule changed or added by hand shows as drift; the kernel's state is read back as
JSON (`nft -j list table inet netctl`), never by parsing text. The one rule that depends on
the host: `bridge-accept-fwmark` puts a mark-accept rule first in `forward`, its mark repeated
in the rule's comment so that it reads back into the table resource.

Resources: the table (its `skeleton` attribute is the digest of chains, rules and sets: any
difference is repaired in place, in one transaction, keeping the elements) and one resource
per element (`nft:element/SET/KEY`), whose parent is the table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.firewall import render
from controller.firewall.rules import Rule
from controller.model import Action, Kind, Op, Resource, Target

FAMILY = "inet"
TABLE = "netctl"
TABLE_KEY = f"nft:table/{FAMILY}/{TABLE}"
COMMENT = "netctl:"  # every rule's comment starts with it, then the digest of its text
MARK_COMMENT = " fwmark "  # then, on the accept-mark rule, the mark (read back into the table)
PROTOCOLS = "{{ tcp, udp, sctp }}"  # braces doubled: rule templates are formatted


@dataclass(frozen=True)
class Set:
    name: str
    types: tuple[str, ...]
    data: tuple[str, ...] = ()  # a map's value types; ("verdict",) for a verdict map
    interval: bool = False

    def declaration(self) -> str:
        kind = "map" if self.data else "set"
        type_ = " . ".join(self.types) + (f" : {' . '.join(self.data)}" if self.data else "")
        flags = " flags interval;" if self.interval else ""
        return f"add {kind} {FAMILY} {TABLE} {self.name} {{ type {type_};{flags} }}"


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[str, ...]
    hook: tuple[str, str, int] | None = None  # (type, hook, priority); None: a regular chain

    def declaration(self) -> str:
        if self.hook is None:
            return f"add chain {FAMILY} {TABLE} {self.name}"
        type_, hook, priority = self.hook
        return (f"add chain {FAMILY} {TABLE} {self.name} "
                f"{{ type {type_} hook {hook} priority {priority}; policy accept; }}")


def _family_sets(v: str, addr: str) -> list[Set]:
    return [
        # published ports: (bridge, container address, protocol, port) accepted once DNAT'd.
        # Single ports and runs of ports apart, here and in hairpin: an interval set of
        # concatenations (the kernel's pipapo) costs ~3x a hash set's insert and lookup.
        Set(f"published{v}", ("ifname", addr, "inet_proto", "inet_service")),
        Set(f"published{v}range", ("ifname", addr, "inet_proto", "inet_service"), interval=True),
        # host address, protocol, host port -> container address, port (exact host address)
        Set(f"dnat{v}", (addr, "inet_proto", "inet_service"), (addr, "inet_service")),
        # the same for every local address
        Set(f"dnat{v}any", ("inet_proto", "inet_service"), (addr, "inet_service")),
        # ranges published on the same ports: the port stays, only the address changes
        Set(f"dnat{v}range", (addr, "inet_proto", "inet_service"), (addr,), interval=True),
        Set(f"dnat{v}anyrange", ("inet_proto", "inet_service"), (addr,), interval=True),
        # a container reaching its own published port: masquerade (src, dst, protocol, port)
        Set(f"hairpin{v}", (addr, addr, "inet_proto", "inet_service")),
        Set(f"hairpin{v}range", (addr, addr, "inet_proto", "inet_service"), interval=True),
        Set(f"masquerade{v}", (addr,), interval=True),  # subnets masqueraded on the way out
        Set(f"own{v}", (addr, "ifname"), interval=True),  # subnet . its bridge: not masqueraded
        Set(f"containers{v}", (addr,)),  # every container address on a netctl bridge ...
        Set(f"via{v}", (addr, "ifname")),  # ... reachable only through its bridge
        Set(f"loopback{v}", (addr, "inet_proto", "inet_service"), interval=True),  # 127.0.0.1-only ports
        # legacy links with ICC off: (src, dst), with the linked container's ports if it exposes any
        Set(f"links{v}", (addr, addr)),
        Set(f"linkdports{v}", (addr, addr, "inet_proto", "inet_service")),
        Set(f"linksports{v}", (addr, addr, "inet_proto", "inet_service")),
    ]


SETS: tuple[Set, ...] = (
    Set("bridges", ("ifname",)),  # every netctl bridge
    Set("internal", ("ifname",)),  # internal networks' bridges: no way in or out
    Set("outward", ("ifname",)),  # the others: traffic may leave
    Set("intra", ("ifname", "ifname"), ("verdict",)),  # bridge . itself: accept (ICC) or drop
    # bridge . itself where links open pairs (the default bridge with ICC off). The pairs'
    # sets hold no interface names: two names and two IPv6 addresses exceed nft's registers.
    Set("linked", ("ifname", "ifname")),
    *_family_sets("4", "ipv4_addr"),
    *_family_sets("6", "ipv6_addr"),
)
BY_NAME = {s.name: s for s in SETS}


def _both(template: str) -> list[str]:
    """A rule for each family: {ip} is `ip`/`ip6`, {v} is 4/6, {lo} the loopback net."""
    families = (("ip", "4", "127.0.0.0/8"), ("ip6", "6", "::1"))
    return [template.format(ip=ip, v=v, lo=lo) for ip, v, lo in families]


def _dnat(daddr: bool, suffix: str) -> list[str]:
    key = "{ip} daddr . meta l4proto . th dport" if daddr else "meta l4proto . th dport"
    return _both(f"meta l4proto {PROTOCOLS} dnat {{ip}} to {key} map @dnat{{v}}{suffix}")


def mark_rule(fwmark: str) -> str:
    """bridge-accept-fwmark's rule: VALUE or VALUE/MASK, as Docker takes it."""
    value, _, mask = fwmark.partition("/")
    return f"meta mark and {mask} == {value} accept" if mask else f"meta mark {value} accept"


def chains(fwmark: str = "") -> tuple[Chain, ...]:
    """CHAINS, with the accept-mark rule first in `forward` when the host configures one."""
    if not fwmark:
        return CHAINS
    forward, *rest = CHAINS
    return (dataclasses.replace(forward, rules=(mark_rule(fwmark), *forward.rules)), *rest)


CHAINS: tuple[Chain, ...] = (
    Chain("forward", (
        "oifname @bridges ct state established,related accept",
        *_both("ct status dnat oifname . {ip} daddr . meta l4proto . th dport @published{v} accept"),
        *_both("ct status dnat oifname . {ip} daddr . meta l4proto . th dport @published{v}range accept"),
        "iifname . oifname @linked jump links",
        "iifname . oifname vmap @intra",
        "iifname @internal drop",
        "oifname @internal drop",
        "iifname @bridges oifname @bridges drop",
        "iifname @outward accept",
        "oifname @bridges drop",
    ), ("filter", "forward", 0)),
    Chain("links", (
        *_both("{ip} saddr . {ip} daddr @links{v} accept"),
        *_both("{ip} saddr . {ip} daddr . meta l4proto . th dport @linkdports{v} accept"),
        *_both("{ip} saddr . {ip} daddr . meta l4proto . th sport @linksports{v} accept"),
    )),
    Chain("published", (
        *_dnat(True, ""), *_dnat(False, "any"), *_dnat(True, "range"), *_dnat(False, "anyrange"),
    )),
    Chain("prerouting", ("fib daddr type local jump published",), ("nat", "prerouting", -100)),
    Chain("output", ("fib daddr type local jump published",), ("nat", "output", -100)),
    Chain("postrouting", (
        *_both("{ip} saddr . {ip} daddr . meta l4proto . th dport @hairpin{v} masquerade"),
        *_both("{ip} saddr . {ip} daddr . meta l4proto . th dport @hairpin{v}range masquerade"),
        # the host reaching a container through 127.0.0.1 or its own address
        "fib saddr type local oifname @outward masquerade",
        *_both("{ip} saddr . oifname @own{v} return"),
        *_both("{ip} saddr @masquerade{v} masquerade"),
    ), ("nat", "postrouting", 100)),
    Chain("raw", (
        # route_localnet lets 127.0.0.0/8 in from a bridge (CVE-2020-8558): nothing may come so
        *_both("iifname @bridges {ip} daddr {lo} drop"),
        *_both("{ip} daddr @containers{v} {ip} daddr . iifname != @via{v} drop"),
        *_both('{ip} daddr . meta l4proto . th dport @loopback{v} iifname != "lo" drop'),
    ), ("filter", "prerouting", -300)),
)


def rule_id(chain: str, rule: str) -> str:
    return hashlib.sha256(f"{chain}\n{rule}".encode()).hexdigest()[:16]


def skeleton_digest(
    chains: Iterable[tuple[str, object, Sequence[str]]], sets: Iterable[tuple[object, ...]]
) -> str:
    """The digest of chains (name, hook, rule ids in order) and sets (name, types, data, interval)."""
    text = json.dumps([sorted(([n, h, list(r)] for n, h, r in chains), key=lambda c: str(c[0])),
                       sorted((list(s) for s in sets), key=lambda s: str(s[0]))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def wanted_digest(fwmark: str = "") -> str:
    return skeleton_digest(
        ((c.name, list(c.hook) if c.hook else None, [rule_id(c.name, r) for r in c.rules])
         for c in chains(fwmark)),
        ((s.name, list(s.types), list(s.data), s.interval) for s in SETS),
    )


# ---------------------------------------------------------------------------- elements


def table(fwmark: str = "") -> Resource:
    return _table(wanted_digest(fwmark), fwmark)


def _table(digest: str, fwmark: str) -> Resource:
    return Resource(Kind.NFT_TABLE, TABLE_KEY,
                    {"family": FAMILY, "table": TABLE, "skeleton": digest, "accept_fwmark": fwmark})


def element(set_name: str, key: Sequence[str], value: Sequence[str] = ()) -> Resource:
    attrs: dict[str, object] = {"set": set_name, "key": " . ".join(key)}
    if value:
        attrs["value"] = " . ".join(value)
    return _element(attrs)


_TABLE_DEPS = (TABLE_KEY,)
_VALUE = frozenset({"value"})


def _element(attrs: Mapping[str, Any]) -> Resource:
    return Resource(Kind.NFT_ELEMENT, f"nft:element/{attrs['set']}/{attrs['key']}", attrs, deps=_TABLE_DEPS,
                    parent=TABLE_KEY, immutable=_VALUE)


def from_attrs(attrs: Mapping[str, Any]) -> Resource:
    """The table or an element again from its attrs (the backend keeps the table as last
    known by them)."""
    if "set" in attrs:
        return _element(attrs)
    return _table(attrs["skeleton"], attrs["accept_fwmark"])


def resources(target: Target) -> list[Resource]:
    """The table and its elements for `target` (nothing when no bridge network needs rules)."""
    elements: dict[str, Resource] = {}
    any_bridge = False
    for version in (4, 6):
        bridges = render.bridges(target, version)
        if not bridges:
            continue
        any_bridge = True
        for r in _elements(target, version, bridges):
            elements[r.key] = r
    if not any_bridge:
        return []
    return [table(target.accept_fwmark), *elements.values()]


def _q(ifname: str) -> str:
    return json.dumps(ifname)


def _elements(target: Target, version: int, bridges: list[render.Bridge]) -> Iterator[Resource]:
    v = str(version)
    for b in bridges:
        dev = _q(b.device)
        yield element("bridges", [dev])
        yield element("internal" if b.internal else "outward", [dev])
        yield element("intra", [dev, dev], ["accept" if b.icc else "drop"])
        yield element(f"own{v}", [b.subnet, dev])
        if b.masquerade and not b.internal:
            yield element(f"masquerade{v}", [b.subnet])
    devices = {b.net.name: b.device for b in bridges}
    for c in sorted(target.containers, key=lambda c: c.name):
        for ep in c.endpoints:
            address = ep.ipv4 if version == 4 else ep.ipv6
            device = devices.get(ep.network)
            if address is not None and device is not None:
                yield element(f"containers{v}", [str(address.ip)])
                yield element(f"via{v}", [str(address.ip), _q(device)])
    for run in _runs(render.published(target, version)):
        yield from _published_elements(v, run)
    for b in bridges:
        if not b.icc and b.net.default_bridge:  # a link opens a pair on the default bridge only
            yield element("linked", [_q(b.device), _q(b.device)])
            for rule in render.link_rules(target, b, version):
                yield _link_element(v, rule)


@dataclass(frozen=True)
class Run:
    """Published ports that are one element: consecutive host ports mapped to the same ports."""

    first: render.Published
    last_port: int

    def ports(self, host: bool) -> str:
        start = self.first.host_port if host else self.first.container_port
        end = start + (self.last_port - self.first.host_port)
        return str(start) if end == start else f"{start}-{end}"


def _runs(published: Sequence[render.Published]) -> list[Run]:
    def group(p: render.Published) -> tuple[object, ...]:
        return (p.host_ip or "", p.protocol.value, p.container_ip, p.bridge, p.loopback_only)

    out: list[Run] = []
    for p in sorted(published, key=lambda p: (group(p), p.host_port)):
        last = out[-1] if out else None
        if (last is not None and group(last.first) == group(p) and p.host_port == last.last_port + 1
                and p.host_port == p.container_port and last.first.host_port == last.first.container_port):
            out[-1] = Run(last.first, p.host_port)
        else:
            out.append(Run(p, p.host_port))
    return out


def dnat_element_key(target: Target, published: render.Published) -> str:
    """The key of the DNAT element that carries `published` (its run's, for a run of ports)."""
    version = 6 if ":" in published.container_ip else 4
    for run in _runs(render.published(target, version)):
        p = run.first
        same = (p.host_ip, p.protocol, p.container_ip) == (published.host_ip, published.protocol,
                                                             published.container_ip)
        if same and p.host_port <= published.host_port <= run.last_port:
            dnat = [r for r in _published_elements(str(version), run) if r.attrs["set"].startswith("dnat")]
            return dnat[0].key
    return ""


def _published_elements(v: str, run: Run) -> Iterator[Resource]:
    p = run.first
    proto, host_ports, ports = p.protocol.value, run.ports(True), run.ports(False)
    ranged = "-" in host_ports
    runs = "range" if ranged else ""
    yield element(f"published{v}{runs}", [_q(p.bridge), p.container_ip, proto, ports])
    yield element(f"hairpin{v}{runs}", [p.container_ip, p.container_ip, proto, ports])
    name = f"dnat{v}{'' if p.host_ip else 'any'}{runs}"
    key = ([p.host_ip] if p.host_ip else []) + [proto, host_ports]
    yield element(name, key, [p.container_ip] if ranged else [p.container_ip, str(p.container_port)])
    if p.loopback_only and p.host_ip:
        yield element(f"loopback{v}", [p.host_ip, proto, host_ports])


def _link_element(v: str, rule: Rule) -> Resource:
    assert rule.src and rule.dst
    key = [rule.src.split("/")[0], rule.dst.split("/")[0]]
    if rule.proto is None:
        return element(f"links{v}", key)
    if rule.dport is not None:
        return element(f"linkdports{v}", [*key, rule.proto, str(rule.dport)])
    return element(f"linksports{v}", [*key, rule.proto, str(rule.sport)])


# ---------------------------------------------------------------------------- reading back


def owned_resources(listing: Mapping[str, Any]) -> list[Resource]:
    """`nft -j list table inet netctl` -> the table (with the digest of what is there) and
    its elements; [] when the table does not exist."""
    items = listing.get("nftables", [])
    if not any("table" in i for i in items):
        return []
    chains: dict[str, tuple[object, list[str]]] = {}
    sets: list[tuple[object, ...]] = []
    out: list[Resource] = []
    fwmark = ""
    for item in items:
        if "chain" in item:
            c = item["chain"]
            hook = [c["type"], c["hook"], c["prio"]] if "hook" in c else None
            chains[c["name"]] = (hook, [])
        elif "rule" in item:
            r = item["rule"]
            comment = str(r.get("comment", ""))
            ident = comment[len(COMMENT):] if comment.startswith(COMMENT) else f"foreign:{r.get('handle')}"
            ident, _, mark = ident.partition(MARK_COMMENT)
            fwmark = fwmark or mark
            chains.setdefault(r["chain"], (None, []))[1].append(ident)
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            types = _types(s["type"])
            data = _types(s["map"]) if "map" in s else []
            sets.append((s["name"], types, data, "interval" in s.get("flags", [])))
            for e in s.get("elem", []):
                out.append(_observed_element(s["name"], types, data, e))
    digest = skeleton_digest(((n, h, r) for n, (h, r) in chains.items()), sets)
    return [_table(digest, fwmark), *out]


def _types(t: str | list[str]) -> list[str]:
    if isinstance(t, list):
        return t
    return [p.strip() for p in t.split(".")]


def _observed_element(name: str, types: list[str], data: list[str], e: Any) -> Resource:
    if isinstance(e, dict) and "elem" in e:  # an element with options (timeout, comment)
        e = e["elem"]["val"]
    if data:
        key, value = e
        return element(name, _atoms(types, key), _atoms(data, value))
    return element(name, _atoms(types, e))


def _atoms(types: list[str], value: Any) -> list[str]:
    parts = value["concat"] if isinstance(value, dict) and "concat" in value else [value]
    return [_atom(t, p) for t, p in zip(types, parts, strict=False)]


def _atom(type_: str, v: Any) -> str:
    """One element field as netctl writes it in `add element`."""
    if isinstance(v, dict):
        if "prefix" in v:
            return f"{v['prefix']['addr']}/{v['prefix']['len']}"
        if "range" in v:
            a, b = v["range"]
            return f"{_atom(type_, a)}-{_atom(type_, b)}"
        if len(v) == 1:  # a verdict: {"accept": null}, {"jump": {"target": ...}}
            (verdict, arg), = v.items()
            return verdict if arg is None else f"{verdict} {arg.get('target', '')}"
    if type_ == "ifname":
        return _q(str(v))
    if type_ == "ipv6_addr":  # nft's text form may differ from Python's (netctl writes Python's)
        return str(ipaddress.ip_address(v))
    return str(v)


# ---------------------------------------------------------------------------- writing


def script(actions: Sequence[Action]) -> str:
    """One `nft -f` transaction for every table and element action, in an order the kernel
    accepts: elements out, the table out (with its elements), the table's chains, rules and
    sets (created or repaired in place: elements kept), elements in."""
    lines: list[str] = []
    table_actions = [a for a in actions if a.resource.kind is Kind.NFT_TABLE]
    elements = [a for a in actions if a.resource.kind is Kind.NFT_ELEMENT]
    lines += _element_lines("delete", [a.resource for a in elements if a.op is Op.DELETE])
    if any(a.op is Op.DELETE for a in table_actions):
        lines.append(f"delete table {FAMILY} {TABLE}")
    for a in table_actions:
        if a.op is not Op.DELETE:
            lines += skeleton_lines(str(a.resource.attr("accept_fwmark", "")))
    lines += _element_lines("add", [a.resource for a in elements if a.op is not Op.DELETE])
    return "\n".join(lines) + "\n"


def skeleton_lines(fwmark: str = "") -> list[str]:
    """The table, its sets and chains, and every chain's rules, from scratch or over what is
    there: `add` keeps what exists, each chain is flushed and refilled, elements stay."""
    lines = [f"add table {FAMILY} {TABLE}"]
    lines += [s.declaration() for s in SETS]
    lines += [c.declaration() for c in chains(fwmark)]
    marked = mark_rule(fwmark) if fwmark else None
    for c in chains(fwmark):
        lines.append(f"flush chain {FAMILY} {TABLE} {c.name}")
        for r in c.rules:
            comment = COMMENT + rule_id(c.name, r) + (f"{MARK_COMMENT}{fwmark}" if r == marked else "")
            lines.append(f'add rule {FAMILY} {TABLE} {c.name} {r} comment "{comment}"')
    return lines


def _element_lines(verb: str, resources: Sequence[Resource]) -> list[str]:
    by_set: dict[str, list[str]] = {}
    for r in resources:
        text = r.attrs["key"] + (f" : {r.attrs['value']}" if verb == "add" and "value" in r.attrs else "")
        by_set.setdefault(r.attrs["set"], []).append(text)
    out = []
    for name, items in sorted(by_set.items()):
        for i in range(0, len(items), 500):  # a line per 500: nft's parser copes, errors stay readable
            out.append(f"{verb} element {FAMILY} {TABLE} {name} {{ {', '.join(items[i:i + 500])} }}")
    return out
