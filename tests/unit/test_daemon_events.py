"""Event sources without a kernel: rtnetlink parsing and filtering, file watch handlers."""

from __future__ import annotations

import socket
import struct

from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from controller.daemon.events import (
    IFINFOMSG,
    NLMSG_HDR,
    RT_SCOPE_LINK,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    Event,
    FolderChanged,
    FolderHandler,
    KernelChanged,
    LinkMemory,
    NetnsFilesHandler,
    link_dump_request,
    parse,
    relevant_in_container,
)


def attr(atype: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, atype) + payload + b"\0" * ((4 - length % 4) % 4)


def message(mtype: int, body: bytes, pid: int = 0) -> bytes:
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), mtype, 0, 0, pid) + body


def link(mtype: int, index: int, name: str, up: bool) -> bytes:
    return message(mtype, IFINFOMSG.pack(0, 1, index, 1 if up else 0, 0) + attr(3, name.encode() + b"\0"))


def address(mtype: int, index: int, ip: str, prefix: int, scope: int = 0, label: str = "") -> bytes:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    body = struct.pack("=BBBBI", family, prefix, 0, scope, index)
    body += attr(2, socket.inet_pton(family, ip))
    if label:
        body += attr(3, label.encode() + b"\0")
    return message(mtype, body)


def route(mtype: int, dst_len: int, oif: int) -> bytes:
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, dst_len, 0, 0, 254, 4, 0, 1, 0)
    return message(mtype, body + attr(4, struct.pack("=I", oif)))


def test_parse_reads_every_message_of_a_datagram() -> None:
    data = (
        link(RTM_DELLINK, 7, "veth1a2b3c4d", up=False)
        + address(RTM_DELADDR, 2, "172.17.0.2", 16, label="eth0")
        + route(RTM_NEWROUTE, 0, 2)
        + message(99, b"\0" * 8)  # unknown type: skipped
    )
    got = list(parse(data))
    assert [n.type for n in got] == [RTM_DELLINK, RTM_DELADDR, RTM_NEWROUTE]
    assert got[0].ifname == "veth1a2b3c4d" and got[0].index == 7
    assert got[0].describe() == "link veth1a2b3c4d deleted"
    assert got[1].describe() == "address 172.17.0.2/16 removed from eth0"
    assert got[2].dst_len == 0 and got[2].index == 2
    assert got[2].describe("eth0") == "route default changed (eth0)"


def test_parse_survives_truncated_input() -> None:
    data = link(RTM_NEWLINK, 3, "br0", up=True)
    for cut in range(len(data)):
        list(parse(data[:cut]))  # never raises


def test_container_filter_ignores_link_local_and_non_default_routes() -> None:
    ll, = parse(address(RTM_NEWADDR, 2, "fe80::1", 64, scope=RT_SCOPE_LINK))
    glob, = parse(address(RTM_NEWADDR, 2, "fd00::2", 64))
    prefix, = parse(route(RTM_NEWROUTE, 16, 2))
    default, = parse(route(RTM_NEWROUTE, 0, 2))
    lo, = parse(link(RTM_NEWLINK, 1, "lo", up=True))
    eth, = parse(link(RTM_NEWLINK, 2, "eth0", up=False))
    assert [relevant_in_container(n) for n in (ll, glob, prefix, default, lo, eth)] == [
        False, True, False, True, False, True
    ]
    assert eth.describe() == "link eth0 down"


def test_only_changes_to_what_netctl_sets_on_a_link_are_news() -> None:
    memory = LinkMemory()
    up, = parse(link(RTM_NEWLINK, 5, "veth1", up=True))
    assert memory.changed(None, up)  # first sight
    assert not memory.changed(None, up)  # the same again (carrier, operstate): not news
    bridge_port = IFINFOMSG.pack(7, 1, 5, 1, 0) + attr(3, b"veth1\0")  # AF_BRIDGE: port state
    port, = parse(message(RTM_NEWLINK, bridge_port))
    assert not memory.changed(None, port)
    down, = parse(link(RTM_NEWLINK, 5, "veth1", up=False))
    assert memory.changed(None, down)
    assert memory.changed("web", up)  # another namespace, another link
    gone, = parse(link(RTM_DELLINK, 5, "veth1", up=False))
    assert memory.changed(None, gone)
    memory.forget("web")
    assert memory.changed("web", up)


def test_link_dump_request_is_a_well_formed_netlink_message() -> None:
    data = link_dump_request(seq=5)
    length, mtype, flags, seq, _ = NLMSG_HDR.unpack_from(data)
    assert length == len(data) and mtype == 18 and flags & 0x300 and seq == 5


def test_folder_handler_ignores_our_own_reads() -> None:
    got: list[Event] = []
    h = FolderHandler(got.append, clock=lambda: 1.0)
    h.dispatch(FileOpenedEvent("/m/a.yaml"))
    h.dispatch(FileClosedNoWriteEvent("/m/a.yaml"))
    h.dispatch(FileModifiedEvent("/m/a.yaml"))
    h.dispatch(FileClosedEvent("/m/a.yaml"))
    h.dispatch(FileMovedEvent("/m/a.yaml", "/m/b.yaml"))
    assert got == [
        FolderChanged("/m/a.yaml", "modified", 1.0),
        FolderChanged("/m/a.yaml", "closed", 1.0),
        FolderChanged("/m/a.yaml", "moved", 1.0, "/m/b.yaml"),
    ]


def test_netns_files_handler_names_the_container() -> None:
    got: list[Event] = []
    h = NetnsFilesHandler(got.append, "/etc/netns", "/run/netns", clock=lambda: 2.0)
    h.dispatch(FileModifiedEvent("/etc/netns/web/hosts"))
    h.dispatch(FileOpenedEvent("/etc/netns/web/hosts"))  # observe reading it: not drift
    h.dispatch(FileModifiedEvent("/etc/netns/web/.netctl-abc"))  # our temp file
    h.dispatch(FileDeletedEvent("/run/netns/db"))
    h.dispatch(DirDeletedEvent("/etc/netns/api"))
    assert got == [
        KernelChanged("web", "file /etc/netns/web/hosts modified", 2.0),
        KernelChanged("db", "namespace deleted", 2.0),
        KernelChanged("api", "folder /etc/netns/api deleted", 2.0),
    ]
