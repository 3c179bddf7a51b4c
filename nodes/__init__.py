"""Thin ComfyUI adapters, one module per pipeline stage.

Each module defines NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS; they are merged here.
Imports stay relative: the host has a top-level module called ``nodes``.
"""
from . import dataset_nodes, files, layerdiffusion_nodes, matte, prompt

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in (files, matte, prompt, layerdiffusion_nodes, dataset_nodes):
    _clash = set(NODE_CLASS_MAPPINGS) & set(_module.NODE_CLASS_MAPPINGS)
    if _clash:
        raise RuntimeError(f"node ids defined twice: {sorted(_clash)}")
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
del _module, _clash

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
