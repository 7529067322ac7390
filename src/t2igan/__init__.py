"""t2igan: text-to-image GANs in one modern PyTorch framework."""

__version__ = "0.1.0"

from .errors import T2IError  # noqa: E402
from .registry import register_model  # noqa: E402


def __getattr__(name):  # lazy: importing t2igan stays cheap (the CLI's --help imports no model)
    if name == "Text2ImagePipeline":
        from .pipeline import Text2ImagePipeline

        return Text2ImagePipeline
    if name in ("create_model", "list_models"):
        from . import models

        return getattr(models, name)
    raise AttributeError(name)


__all__ = ["T2IError", "Text2ImagePipeline", "create_model", "list_models", "register_model", "__version__"]
