"""One C-allocator arena for the whole process (glibc on Linux), set before any thread starts.

Every run makes fresh multi-megabyte buffers (layer outputs, the grid's pixels), on the run worker's
thread, and the previous ones are freed later on another thread (the reaper). glibc gives each
thread that allocates its own arena, and a thread's arena gives a heap back to the system as soon as
everything in it is free, so the next run's buffers came from fresh pages: about 2,000 page faults
(8 MB) in the first conv of the default stack on a 512x512 image, 5 µs each on a virtual machine,
which made that layer take 20 ms in the window against 7 ms in a script. The main arena keeps
freed memory up to its trim threshold (glibc adapts it to the sizes freed, at most 64 MB) and hands
it out again: no faults once the sizes repeat.

The price: small allocations still come from per-thread caches, but the big ones share one lock
(taken once per tensor); and the process keeps up to that threshold of freed memory instead of
giving it back at once (65 MB after the benchmark's 30 edits; malloc_trim(0) returns it). The
user's own MALLOC_ARENA_MAX (or glibc tunable) wins. Other systems' allocators are left alone."""

from __future__ import annotations

import os
import sys

_M_ARENA_MAX = -8       # mallopt's parameter number in glibc's malloc.h


def use_one_arena() -> bool:
    """Asks glibc for one malloc arena. Takes effect only before a second thread allocates (call it
    first thing in the process); later it changes nothing. True when glibc took it; False on other
    systems and C libraries, or when the user chose an arena count."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version     # glibc only: musl's mallopt accepts and ignores everything
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(_M_ARENA_MAX, 1) == 1
