"""The training loop's public names (kept importable from here; the code is in :mod:`t2igan.training`)."""

from .training import *  # noqa: F401,F403
from .training import __all__  # noqa: F401
