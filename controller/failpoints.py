"""Named failpoints for crash tests (as etcd's gofail): SIGKILL this process at an exact spot.

    NETCTL_FAILPOINTS="action=7"          killed after the 7th executed action
    NETCTL_FAILPOINTS="veth-created=2"    killed right after the 2nd veth exists, before its
                                          ownership alias is set

Unset (always, outside tests) every call is a dictionary lookup that finds nothing.
"""

from __future__ import annotations

import os
import signal

_ARMED = {
    name: int(count)
    for name, _, count in (
        item.partition("=") for item in os.environ.get("NETCTL_FAILPOINTS", "").split(",") if item
    )
}
_hits: dict[str, int] = {}


def hit(name: str) -> None:
    if name not in _ARMED:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _ARMED[name]:
        os.kill(os.getpid(), signal.SIGKILL)
