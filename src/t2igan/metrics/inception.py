"""Inception-v3 weights for FID and IS, and the ready networks: :func:`build_inception` gives
:class:`t2igan.nn.inception.FIDInceptionV3` (the TensorFlow Inception of 2015-12-05 that the original
FID and IS code use, pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``) or
:class:`t2igan.nn.inception.ImageNetInceptionV3` (torchvision's ``inception_v3_google-0cc3c7bd.pth``)
with its weights loaded.

Weights are found by :func:`load_inception_weights`: explicit path, then an environment variable, then
the cache folder, then (if allowed) a download; no file is ever fetched in tests.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from ..errors import T2IError
from ..nn.inception import FIDInceptionV3, ImageNetInceptionV3, InceptionV3

WEIGHTS = {
    "fid": {  # 95,628,359 bytes, 566 entries
        "file": "pt_inception-2015-12-05-6726825d.pth",
        "url": "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "env": "T2IGAN_INCEPTION_WEIGHTS",
    },
    "imagenet": {
        "file": "inception_v3_google-0cc3c7bd.pth",
        "url": "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        "env": "T2IGAN_INCEPTION_IS_WEIGHTS",
    },
}
OFFLINE_ENV = "T2IGAN_OFFLINE"  # "1": never download
CACHE_ENV = "T2IGAN_CACHE"  # cache folder (default ~/.cache/t2igan)
# torch.hub's convention: "name-<first hex digits of the sha256>.ext"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^.]+$")


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "t2igan")


def hash_prefix_from_name(path: str | Path) -> str | None:
    """The sha256 prefix a file name carries (``pt_inception-2015-12-05-6726825d.pth`` -> ``6726825d``),
    or None. Same convention as ``torch.hub`` (``check_hash``), whose files are ``name-<sha256[:8+]>.ext``."""
    match = _HASH_IN_NAME.search(Path(path).name)
    return match.group(1) if match else None


def check_file_hash(path: str | Path) -> None:
    """Raise :class:`T2IError` if the file's sha256 does not start with the prefix in its name."""
    prefix = hash_prefix_from_name(path)
    if prefix is None:
        return
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    digest = sha.hexdigest()
    if not digest.startswith(prefix):
        raise T2IError(f"{path}: sha256 {digest[:16]}... does not start with {prefix} (from the file name): "
                       "the file is corrupt or not the released one")


def downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes")


def resolve_weights_path(kind: str = "fid", path: str | Path | None = None, download: bool | None = None) -> Path:
    """Where the ``kind`` ("fid" | "imagenet") weights are: ``path``, else the env var
    (``T2IGAN_INCEPTION_WEIGHTS`` / ``T2IGAN_INCEPTION_IS_WEIGHTS``), else ``cache_dir()/<file>``,
    downloading into the cache if it is absent and ``download`` (default: unless ``T2IGAN_OFFLINE=1``)."""
    if kind not in WEIGHTS:
        raise T2IError(f"unknown Inception weights kind {kind!r}; choose one of {sorted(WEIGHTS)}")
    info = WEIGHTS[kind]
    for given, origin in ((path, "path"), (os.environ.get(info["env"]), info["env"])):
        if given:
            given = Path(given).expanduser()
            if not given.is_file():
                raise T2IError(f"Inception weights file not found: {given} (given by {origin})")
            return given
    cached = cache_dir() / info["file"]
    if cached.is_file():
        return cached
    where = f"put {info['file']} ({info['url']}) at {cached} or set {info['env']}=/path/to/{info['file']}"
    if not downloads_allowed(download):
        raise T2IError(f"Inception weights not found and downloads are off: {where}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(info["url"], str(cached), hash_prefix=hash_prefix_from_name(cached))
    except Exception as err:  # offline, HTTP error, hash mismatch: all mean "place the file yourself"
        raise T2IError(f"could not download Inception weights ({type(err).__name__}): {where}") from err
    return cached


def load_inception_weights(kind: str = "fid", path: str | Path | None = None,
                           download: bool | None = None, check_hash: bool = True) -> dict[str, torch.Tensor]:
    """Find (see :func:`resolve_weights_path`), hash-check and load the ``kind`` weights as a state dict.

    The check compares the file's sha256 with the prefix in its name (torch.hub convention); a file whose
    name carries no hash (``my_inception.pth``) is loaded unchecked.
    """
    file = resolve_weights_path(kind, path, download)
    if check_hash:
        check_file_hash(file)
    try:
        state_dict = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise T2IError(f"{file}: not a readable PyTorch weights file ({type(err).__name__}: {err})") from err
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise T2IError(f"{file}: expected a state dict of tensors")
    return state_dict


def build_inception(kind: str = "fid", path: str | Path | None = None, download: bool | None = None,
                    input_range: str = "[-1,1]", device: str | torch.device = "cpu",
                    check_hash: bool = True) -> InceptionV3:
    """A ready-to-use :class:`FIDInceptionV3` ("fid") or :class:`ImageNetInceptionV3` ("imagenet")."""
    file = resolve_weights_path(kind, path, download)
    state_dict = load_inception_weights(kind, path=file, check_hash=check_hash)
    model = FIDInceptionV3(input_range) if kind == "fid" else ImageNetInceptionV3(input_range)
    model.load_official_state_dict(state_dict, source=str(file))
    return model.to(device)
