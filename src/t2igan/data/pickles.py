"""Reading third-party pickles safely.

AttnGAN's ``captions.pickle`` / ``filenames.pickle`` / ``class_info.pickle`` and Reed et al.'s
``char-CNN-RNN-embeddings.pickle`` are pickles from the internet. ``pickle.load`` would run any code
they name, so they are read with :class:`RestrictedUnpickler`, which refuses every global that is not
on an explicit allow-list (plain containers and numpy arrays/scalars only).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from ..errors import T2IError

# (module, name) pairs a data pickle may legitimately reference.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("__builtin__", "set"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
    ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 store bytes
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that loads only data: any global outside :data:`ALLOWED_GLOBALS` is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            if module.startswith("numpy"):
                import numpy as np  # noqa: F401  (resolved lazily; numpy is a dependency)
            if module in ("copy_reg", "__builtin__"):
                module = {"copy_reg": "copyreg", "__builtin__": "builtins"}[module]
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data pickle")


def safe_pickle_load(path: str | Path, encoding: str = "latin1"):
    """Load a data pickle (Python 2 or 3) without running code. Errors name the file.

    ``encoding="latin1"`` is what Python 2 pickles holding numpy arrays need.
    """
    path = Path(path)
    if not path.is_file():
        raise T2IError(f"pickle file not found: {path}")
    return safe_pickle_loads(path.read_bytes(), path, encoding)


def safe_pickle_loads(data: bytes, label, encoding: str = "latin1"):
    """:func:`safe_pickle_load` of bytes already read (``label`` names them in errors)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except pickle.UnpicklingError as e:
        raise T2IError(f"refused to load {label}: {e}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise T2IError(f"cannot read pickle {label}: {type(e).__name__}: {e}") from None
