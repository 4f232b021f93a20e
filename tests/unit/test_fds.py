from __future__ import annotations

import os
import resource
import socket

from controller.kernel import fds


def test_a_lifted_socket_is_the_same_socket_above_select_range() -> None:
    fds.raise_limit()
    a, b = socket.socketpair()
    low = a.fileno()
    lifted = fds.lift_socket(a)
    try:
        assert lifted.fileno() >= fds.FD_SETSIZE
        assert not os.get_inheritable(lifted.fileno())
        lifted.sendall(b"x")
        assert b.recv(1) == b"x"
        assert a.fileno() == -1  # detached: the low number is free again
        with socket.socket() as again:
            assert again.fileno() <= low
    finally:
        lifted.close()
        b.close()


def test_raise_limit_leaves_room_above_select_range() -> None:
    soft = fds.raise_limit()
    assert soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft == resource.RLIM_INFINITY or soft > 2 * fds.FD_SETSIZE
