"""A tensor's identity for cache keys. ``id()`` alone is not one: once a tensor is freed, a new
tensor can get the same id (and version 0 again), and a cache keyed on it hands back a stale result."""

from __future__ import annotations

import weakref

import torch


class SameTensor:
    """Equal only to a SameTensor of the very same, still living tensor at the same version (in-place
    edits bump it). Holds the tensor weakly: a key never keeps a large output alive, and the key of
    a freed tensor equals nothing, whatever tensor later takes its id."""

    __slots__ = ("_ref", "_id", "version")

    def __init__(self, tensor: torch.Tensor):
        self._ref = weakref.ref(tensor)
        self._id = id(tensor)
        self.version = tensor._version

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SameTensor):
            return NotImplemented
        mine = self._ref()
        return mine is not None and mine is other._ref() and self.version == other.version

    def __hash__(self) -> int:
        return hash((self._id, self.version))

    def __repr__(self) -> str:
        return f"SameTensor(id={self._id:#x}, version={self.version}, alive={self._ref() is not None})"
