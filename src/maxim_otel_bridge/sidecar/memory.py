"""How the sidecar's processes ask glibc's allocator to hold memory, so peak RSS stays within its budget.

Two glibc defaults cost the sidecar tens of megabytes under load, without making it faster:

- Every thread that allocates while another holds the allocator's lock gets an arena of its own (up to 8 per
  core). The gRPC server's threads, the spool's writer and the shipping threads each keep their own arena,
  and the freed space of one is never reused by another: request bodies of about 1 MB received in one thread
  and released in another leave each arena holding its own high-water mark. Two arenas are enough: most
  allocations happen under the GIL anyway.
- A block over 128 KiB is mapped on its own and returned to the system when freed, until the first such block
  is freed: then glibc raises that threshold to the freed block's size, and every later request body is carved
  from the heap instead, where it fragments what the small objects around it leave. A fixed threshold keeps
  large blocks mapped (and unmapped when freed).

`tune_malloc` applies both with `mallopt`, as if `MALLOC_ARENA_MAX=2` and `MALLOC_MMAP_THRESHOLD_=131072` were
set, unless the environment already sets either (the operator's choice wins), and does nothing where the C
library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Mapping

__all__ = ["ARENA_MAX", "MMAP_THRESHOLD", "tune_malloc"]

logger = logging.getLogger(__name__)

ARENA_MAX = 2
MMAP_THRESHOLD = 128 * 1024

# From glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_ENV_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def tune_malloc(environ: Mapping[str, str] | None = None) -> bool:
    """Apply the sidecar's allocator settings to this process. True when applied.

    Call it before starting threads: an arena made before stays in use."""
    env = os.environ if environ is None else environ
    if any(name in env for name in _ENV_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it; another C library's mallopt differs
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = mallopt(_M_ARENA_MAX, ARENA_MAX) == 1 and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not applied:
        logger.debug("mallopt refused the allocator settings")
    return applied
