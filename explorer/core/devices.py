"""Choosing where tensors live: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""

from __future__ import annotations

import torch


class DeviceError(Exception):
    """A device that was asked for is not there, or ran out of memory."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("Device 'mps' was asked for, but this machine has no Apple GPU (MPS) that torch can use; use --device cpu.")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"Device '{name}' was asked for, but torch sees no CUDA GPU on this machine; use --device cpu.")
        index = 0
        if ":" in name:
            try:
                index = int(name.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"'{name}' is not a device name; use cuda or cuda:N with N a number.") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise DeviceError(f"Device '{name}' was asked for, but this machine has {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1}).")
        return torch.device("cuda", index)
    raise DeviceError(f"Unknown device '{name}': use auto, cpu, cuda, cuda:N or mps.")


def device_label(device: torch.device) -> str:
    """What the status bar shows: 'CPU' or the GPU's name."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    if device.type == "mps":
        return "Apple GPU (mps)"
    return "CPU"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    # the CPU allocator says "DefaultCPUAllocator: can't allocate memory" (or "not enough memory")
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("out of memory", "can't allocate memory", "not enough memory"))


def out_of_memory_message(device: torch.device, what: str) -> str:
    advice = "try a smaller batch or input size" + (", or switch to the CPU" if device.type != "cpu" else "")
    return f"{what} ran out of memory on {device_label(device)}; {advice}."


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so timings measure the layer, not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
