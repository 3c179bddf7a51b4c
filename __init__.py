"""ComfyUI-LD-Portrait: portrait mattes with Layer Diffusion and connectivity priors.

ComfyUI imports this file as a custom node pack. It must import nothing heavy and nothing
from the host, so the pack also works as a plain library (`import comfyui_ld_portrait`).
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
