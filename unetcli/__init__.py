"""unetcli: train and run the seed U-Net image models (colorize, decolorize, segment) on folders of photos.

Python API (the CLI's ``predict`` runs the same objects)::

    import unetcli
    colorize = unetcli.load("colorize")          # name, alias, or a weights file (.safetensors/.onnx/.pt)
    rgb = colorize(Image.open("old.jpg"))        # PIL image in -> PIL image out, full size
    unetcli.list_models()                        # the registry

The names below are imported on first use, so ``import unetcli`` stays cheap (no torch) and changes no global
state.
"""

__version__ = "0.1.0"

#: Public name -> module that defines it (imported on first attribute access, PEP 562).
_LAZY = {
    "load": "unetcli.api",
    "list_models": "unetcli.api",
    "Predictor": "unetcli.engine.predictor",
    "ModelSpec": "unetcli.models.spec",
    "register_model": "unetcli.models.registry",
    "unregister_model": "unetcli.models.registry",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'unetcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
