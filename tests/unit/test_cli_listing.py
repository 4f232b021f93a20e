"""`network ls` / `container ls` records, filters and formats; prune's filter (pure)."""

from __future__ import annotations

import datetime

import pytest
from topologies import resolved, spec

from controller import listing
from controller.errors import UserError
from controller.model import Attachment, ContainerSpec, NetworkSpec, PortSpec, Protocol

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def target():  # type: ignore[no-untyped-def]
    s = spec(
        NetworkSpec(name="front", labels={"env": "prod", "tier": "web"}),
        NetworkSpec(name="back", internal=True, labels={"env": "test"}),
        NetworkSpec(name="spare", labels={"env": "test"}),
        ContainerSpec(name="web", networks=(Attachment("front"), Attachment("back")),
                      ports=(PortSpec(container_port=80, host_port=8080, protocol=Protocol.TCP),),
                      labels={"app": "shop"}),
        ContainerSpec(name="db", networks=(Attachment("back"),), expose=((5432, Protocol.TCP),)),
    )
    return resolved(s)[0]


def names(records: list[dict[str, object]], key: str = "Name") -> list[object]:
    return [r[key] for r in records]


@pytest.mark.parametrize(("filters", "expected"), [
    ([], ["back", "bridge", "front", "host", "none", "spare"]),
    (["driver=bridge"], ["back", "bridge", "front", "spare"]),
    (["driver=null"], ["none"]),
    (["type=builtin"], ["bridge", "host", "none"]),
    (["type=custom"], ["back", "front", "spare"]),
    (["dangling=true"], ["spare"]),
    (["dangling=false"], ["back", "bridge", "front", "host", "none"]),
    (["name=ront"], ["front"]),
    (["name=front", "name=back"], ["back", "front"]),  # one key: alternatives
    (["label=env=test"], ["back", "spare"]),
    (["label=env=test", "label=tier"], []),  # label: all must match
    (["label=tier"], ["front"]),
    (["label=env", "dangling=true"], ["spare"]),  # keys: all must match
    (["scope=local", "type=custom"], ["back", "front", "spare"]),
])
def test_network_filters_follow_dockers_rules(filters: list[str], expected: list[str]) -> None:
    parsed = listing.parse_filters(filters, listing.NETWORK_FILTERS)
    assert names(listing.networks(target(), parsed)) == expected


def test_network_id_filter_and_truncation() -> None:
    t = target()
    front = t.network("front")
    assert front is not None
    parsed = listing.parse_filters([f"id={front.id[:5]}"], listing.NETWORK_FILTERS)
    (record,) = listing.networks(t, parsed)
    assert record["ID"] == front.id[:12]
    assert listing.networks(t, parsed, no_trunc=True)[0]["ID"] == front.id


@pytest.mark.parametrize(("filters", "expected"), [
    (["network=back"], ["db", "web"]),
    (["network=front"], ["web"]),
    (["publish=8080"], ["web"]),
    (["publish=8080/udp"], []),
    (["expose=5432/tcp"], ["db"]),
    (["expose=80"], ["web"]),
    (["label=app=shop"], ["web"]),
    (["name=d"], ["db"]),
])
def test_container_filters(filters: list[str], expected: list[str]) -> None:
    parsed = listing.parse_filters(filters, listing.CONTAINER_FILTERS)
    assert names(listing.containers(target(), parsed)) == expected


@pytest.mark.parametrize("bad", ["driver", "colour=red", "dangling=maybe", "type=other"])
def test_bad_filters_are_user_errors(bad: str) -> None:
    with pytest.raises(UserError):
        listing.parse_filters([bad], listing.NETWORK_FILTERS)


def test_quiet_format_and_table() -> None:
    records = listing.networks(target(), {"type": ["custom"]})
    quiet = listing.shown(records, None, listing.NETWORK_DEFAULT, listing.NETWORK_COLUMNS, quiet=True)
    assert quiet == "".join(f"{r['ID']}\n" for r in records)
    assert listing.shown(records, "{{.Name}}:{{.Internal}}", listing.NETWORK_DEFAULT,
                         listing.NETWORK_COLUMNS) == "back:true\nfront:false\nspare:false\n"
    table = listing.shown(records, None, listing.NETWORK_DEFAULT, listing.NETWORK_COLUMNS).splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1] for line in table[1:]] == ["back", "front", "spare"]
    custom = listing.shown(records, "table {{.Name}}\t{{.Labels}}", listing.NETWORK_DEFAULT,
                           listing.NETWORK_COLUMNS).splitlines()
    assert custom[0].split() == ["NAME", "LABELS"] and custom[2].split() == ["front", "env=prod,tier=web"]


def test_prune_filter() -> None:
    t = target()
    spare = t.network("spare")
    assert spare is not None
    assert listing.prune_filter(["label=env=test"], NOW)(spare)
    assert not listing.prune_filter(["label!=env=test"], NOW)(spare)
    assert listing.prune_filter(["label!=env=prod"], NOW)(spare)
    created = datetime.datetime.fromisoformat(spare.created.replace("Z", "+00:00"))
    assert listing.prune_filter(["until=1h"], created + datetime.timedelta(hours=2))(spare)
    assert not listing.prune_filter(["until=1h"], created + datetime.timedelta(minutes=30))(spare)
    assert listing.prune_filter(["until=1h30m"], created + datetime.timedelta(hours=2))(spare)
    stamp = (created + datetime.timedelta(seconds=1)).isoformat()
    assert listing.prune_filter([f"until={stamp}"], NOW)(spare)
    with pytest.raises(UserError):
        listing.prune_filter(["until=yesterday"], NOW)
    with pytest.raises(UserError):
        listing.prune_filter(["driver=bridge"], NOW)
