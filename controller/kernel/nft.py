"""nftables through libnftables, in-process (ctypes): one call is one atomic transaction.

The library opens its netlink socket when a context is made, in the calling thread's
network namespace: make the context inside `netns.entered(...)` to change that namespace's
ruleset. No `nft` process per change, and the same text `nft -f` would read.
"""

from __future__ import annotations

import ctypes
import functools
import socket
import struct

from controller.errors import ServiceError

NFT_CTX_DEFAULT = 0


class NftError(ServiceError):
    pass


@functools.cache
def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
    except OSError as exc:
        raise NftError(f"libnftables is not installed (Debian: libnftables1): {exc}") from exc
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def run(commands: str) -> str:
    """Run nft commands (one transaction) in this thread's namespace; their output."""
    lib = _lib()
    ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
    if not ctx:
        raise NftError("nft_ctx_new failed")
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if lib.nft_run_cmd_from_buffer(ctx, commands.encode()) != 0:
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace").strip()
            raise NftError(error or "nft command failed")
        return (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
    finally:
        lib.nft_ctx_free(ctx)


# ---------------------------------------------------------------------------- the generation

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 15, 16
NFTA_GEN_ID = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
SO_NETNS_COOKIE = 71  # Linux 5.14; not in Python's socket module


def generation() -> tuple[int, int] | None:
    """(namespace cookie, ruleset generation) of this thread's network namespace, None when
    the kernel cannot say. The kernel adds one to the generation at every nftables commit,
    whoever makes it (nft, iptables-nft, firewalld); the cookie is never reused within a
    boot, so the pair names one state of one namespace's whole ruleset."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER) as s:
            s.settimeout(1.0)
            cookie = struct.unpack("=Q", s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
            # nlmsghdr (16 bytes) + nfgenmsg (family AF_UNSPEC, version 0, res_id 0)
            request = struct.pack("=IHHII", 20, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN,
                                  NLM_F_REQUEST, 1, 0) + struct.pack("=BBH", 0, 0, 0)
            s.send(request)
            reply = s.recv(4096)
    except OSError:
        return None
    return _generation_reply(cookie, reply)


def _generation_reply(cookie: int, reply: bytes) -> tuple[int, int] | None:
    if len(reply) < 20:
        return None
    length, msg_type = struct.unpack_from("=IH", reply)
    if msg_type != NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN:
        return None  # NLMSG_ERROR: no nf_tables in this kernel
    offset = 20
    while offset + 4 <= min(length, len(reply)):
        size, kind = struct.unpack_from("=HH", reply, offset)
        if size < 4:
            return None
        if kind & 0x3FFF == NFTA_GEN_ID and size >= 8:
            return cookie, struct.unpack_from(">I", reply, offset + 4)[0]
        offset += (size + 3) & ~3
    return None
