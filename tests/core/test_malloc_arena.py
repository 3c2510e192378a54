"""The process's C allocator: one glibc arena for every thread, asked for by the command's main()
before anything starts a thread (explorer/core/malloc_arena.py says why)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from explorer.core import malloc_arena

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                           reason="glibc's malloc only")

# Three threads allocate, then glibc's malloc_stats() lists the arenas on stderr.
_THREADS_ALLOCATE = """
import ctypes, sys, threading
from explorer.core.malloc_arena import use_one_arena
print(use_one_arena() if sys.argv[1] == "one" else "not asked")
held = []
threads = [threading.Thread(target=lambda: held.append(bytearray(1 << 20))) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str, **env) -> tuple[str, int]:
    """(what use_one_arena said, the number of arenas glibc lists), in a fresh interpreter."""
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", _THREADS_ALLOCATE, mode], capture_output=True, text=True,
                          timeout=60, env={**clean, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr.count("Arena ")


@glibc
def test_every_thread_allocates_from_one_arena():
    assert _arenas("default")[1] >= 2          # glibc's own way: the threads get arenas of their own
    assert _arenas("one") == ("True", 1)


@glibc
def test_the_users_own_arena_count_wins():
    said, arenas = _arenas("one", MALLOC_ARENA_MAX="4")
    assert said == "False" and arenas >= 2


def test_the_command_asks_for_it_before_anything_else(monkeypatch, capsys):
    from explorer import cli
    calls = []
    monkeypatch.setattr(malloc_arena, "use_one_arena", lambda: calls.append("arena") or True)
    monkeypatch.setattr(cli, "build_parser", lambda real=cli.build_parser: calls.append("parser") or real())
    assert cli.main(["--version"]) == 0
    assert calls[:2] == ["arena", "parser"]


def test_elsewhere_it_changes_nothing(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert malloc_arena.use_one_arena() is False
