"""Thin ComfyUI adapters, one module per pipeline stage.

Every module of this package that defines NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS is
merged here (modules whose names start with ``_`` are helpers). Imports stay relative: the
host has a top-level module called ``nodes``.
"""
import importlib
import pkgutil

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if _info.name.startswith("_"):
        continue
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    _clash = set(NODE_CLASS_MAPPINGS) & set(getattr(_module, "NODE_CLASS_MAPPINGS", {}))
    if _clash:
        raise RuntimeError(f"node ids defined twice: {sorted(_clash)}")
    NODE_CLASS_MAPPINGS.update(getattr(_module, "NODE_CLASS_MAPPINGS", {}))
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_module, "NODE_DISPLAY_NAME_MAPPINGS", {}))
del _info, _module, _clash

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
