"""Where a walkthrough model's weights come from: 'random' (as built), 'imagenet' (torchvision's
file, only from the local torch cache unless the user asks for the download), or a file the user
chooses. Files are opened safely: ``torch.load(weights_only=True)`` or safetensors, so a file that
would need to run code to load is refused, not run."""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import re
import urllib.error
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import nn

from explorer.core.model_zoo import MODEL_NAMES, check_name, weights_enum

CHUNK = 1 << 20


class WeightsError(ValueError):
    """Weights that cannot be used; the message is one sentence for the user."""


class DownloadCancelled(Exception):
    """The user cancelled a download; nothing was left behind."""


# ---------------------------------------------------------------- torchvision's ImageNet files
def imagenet_url(name: str) -> str:
    w = weights_enum(name)
    if w is None:
        raise WeightsError(f"There are no ImageNet weights for {name}; open a weights file instead.")
    return w.url


def checkpoints_dir() -> Path:
    """torch's own cache folder, where torchvision looks for (and puts) its weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_path(name: str) -> Path:
    return checkpoints_dir() / os.path.basename(urlparse(imagenet_url(name)).path)


def imagenet_available(name: str) -> bool:
    """True when torchvision's ImageNet weights for ``name`` are in the local torch cache."""
    try:
        return imagenet_path(name).is_file()
    except WeightsError:
        return False


def download_size(name: str) -> int:
    """The download's size in bytes, from torchvision's metadata (MiB, so approximate to ~1 KiB)."""
    w = weights_enum(name)
    if w is None:
        raise WeightsError(f"There are no ImageNet weights for {name}.")
    return int(round(float(w.meta.get("_file_size", 0.0)) * 1024 * 1024))


def download_imagenet(name: str, progress: Callable[[int, int], None] | None = None,
                      cancelled: Callable[[], bool] | None = None, timeout: float = 30.0) -> Path:
    """Downloads torchvision's ImageNet weights for ``name`` into the torch cache (only when the user
    asks). ``progress(done, total)`` is told after each MiB (total from the HTTP header, else the
    metadata); ``cancelled()`` is asked between chunks and stops the download (DownloadCancelled,
    no partial file left). The file's hash prefix is checked as torch.hub does."""
    url = imagenet_url(name)
    target = imagenet_path(name)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            header = response.headers.get("Content-Length")
            total = int(header) if header and header.isdigit() else download_size(name)
            done = 0
            digest = hashlib.sha256()
            if progress is not None:
                progress(0, total)
            with open(tmp, "xb") as f:
                while True:
                    if cancelled is not None and cancelled():
                        raise DownloadCancelled(f"The download of the {name} weights was cancelled.")
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        if header and header.isdigit() and done != total:
            raise WeightsError(f"The download of the {name} weights stopped after {done:,} of {total:,} bytes; try again.")
        expected = _hash_prefix(target.name)
        if expected and not digest.hexdigest().startswith(expected):
            raise WeightsError(f"The downloaded {name} weights are damaged (their checksum does not match); try again.")
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise WeightsError(f"Could not download the {name} weights from {url} ({reason}); "
                           "the app keeps working offline with random weights.") from None
    except OSError as e:      # e.g. the cache folder is full or not writable
        raise WeightsError(f"Could not save the {name} weights in {target.parent} ({e.strerror or e}).") from None
    finally:
        tmp.unlink(missing_ok=True)


def _hash_prefix(filename: str) -> str | None:
    match = torch.hub.HASH_REGEX.search(filename)
    return match.group(1) if match else None


# ---------------------------------------------------------------- loading
def infer_model_name(model: nn.Module) -> str | None:
    """Which known architecture a model is, by class and parameter count; None if none matches."""
    count = sum(p.numel() for p in model.parameters())
    cls = type(model).__name__.lower()
    for name in MODEL_NAMES:
        w = weights_enum(name)
        if w is None:
            if cls == "lenet" and count == 61706:
                return name
        elif w.meta.get("num_params") == count and name.rstrip("_bn0123456789") in cls + "net":
            return name
    return None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict of tensors from a .pth/.pt (weights_only) or .safetensors file; WeightsError
    (one sentence) for anything else, and never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Cannot open the weights file '{path}': there is no such file.")
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(f"'{path.name}' is a safetensors file, but the safetensors package is not "
                               "installed (pip install safetensors).") from None
        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as e:
            raise WeightsError(f"'{path.name}' is not a readable safetensors file ({_short(e)}).") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # e.g. "Detected pickle protocol 4": the refusal below says it all
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        match = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({match.group(1)})" if match else ""
        raise WeightsError(f"Refused '{path.name}': it holds a pickled Python object{what} that would run code "
                           "to load, so it was not opened; save a plain state_dict (torch.save(model.state_dict(), f)) "
                           "or a .safetensors file.") from None
    except OSError as e:
        raise WeightsError(f"Cannot read the weights file '{path}' ({e.strerror or e}).") from None
    except Exception as e:
        detail = _short(e)         # torch's reason can be a bare byte code such as "101": leave that out
        detail = f" ({detail})" if re.search(r"[A-Za-z]{3}", detail) else ""
        raise WeightsError(f"'{path.name}' is not a torch weights file{detail}; expected a file written by "
                           "torch.save or a .safetensors file.") from None
    return _as_state_dict(data, path.name)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]


def _as_state_dict(data, filename: str) -> dict[str, torch.Tensor]:
    """Accepts a state_dict, or a checkpoint dict holding one under 'state_dict' or 'model'."""
    if isinstance(data, dict) and not _all_tensors(data):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(data.get(key), dict) and _all_tensors(data[key]):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not _all_tensors(data):
        raise WeightsError(f"'{filename}' does not hold a state_dict (a mapping of names to tensors), "
                           "so it cannot be used as weights.")
    if all(k.startswith("module.") for k in data):        # saved from DataParallel
        data = {k[len("module."):]: v for k, v in data.items()}
    return data


def _all_tensors(d: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """WeightsError (one sentence) unless ``state`` has exactly the model's keys and shapes."""
    own = model.state_dict()
    # Checkpoints from before torch 0.4.1 have no BatchNorm counters; load_state_dict fills them in.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    extra = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = len(missing) + len(extra) + len(wrong)
    if not problems:
        return
    more = f" (and {problems - 1} more difference(s))" if problems > 1 else ""
    if wrong:
        k = wrong[0]
        first = f"'{k}' has shape {list(state[k].shape)} in the file but {list(own[k].shape)} in the model"
    elif missing:
        first = f"it has no '{missing[0]}'"
    else:
        first = f"it has '{extra[0]}', which the model does not"
    raise WeightsError(f"{what} do not fit this model: {first}{more}.")


def load_weights(model: nn.Module, source: str | os.PathLike, name: str | None = None) -> str:
    """Loads weights into ``model`` in place and returns the label summary.json uses: "random"
    (nothing loaded), "imagenet" (torchvision's file from the local torch cache; never downloads) or
    the file path. ``name`` is the architecture (inferred from the model when not given)."""
    if not isinstance(source, os.PathLike) and source == "random":
        return "random"
    if not isinstance(source, os.PathLike) and source == "imagenet":
        name = check_name(name) if name is not None else infer_model_name(model)
        if name is None:
            raise WeightsError("This model is not one of torchvision's ImageNet classifiers, so it has no ImageNet weights.")
        path = imagenet_path(name)
        if not path.is_file():
            raise WeightsError(f"The ImageNet weights for {name} are not in the torch cache ({path}); "
                               "download them (Weights ▸ Download) or open a weights file.")
        state = read_state_dict(path)
        check_fits(model, state, f"The ImageNet weights in {path.name}")
        _load(model, state)
        return "imagenet"
    path = Path(source)
    state = read_state_dict(path)
    check_fits(model, state, f"The weights in '{path.name}'")
    _load(model, state)
    return str(source)


def _load(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    with torch.no_grad():
        converted = {k: v.to(dtype=own[k].dtype) for k, v in state.items()}
    model.load_state_dict(converted, strict=True)
