"""nftables through libnftables, in-process (ctypes): one call is one atomic transaction.

The library opens its netlink socket when a context is made, in the calling thread's
network namespace: make the context inside `netns.entered(...)` to change that namespace's
ruleset. No `nft` process per change, and the same text `nft -f` would read.
"""

from __future__ import annotations

import ctypes
import functools

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
