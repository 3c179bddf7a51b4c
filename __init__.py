"""ComfyUI-LD-Portrait: portrait mattes with Layer Diffusion and connectivity priors.

ComfyUI imports this file as a custom node pack. It must import nothing heavy and nothing
from the host, so the pack also works as a plain library (`import comfyui_ld_portrait`).
"""
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    # Loaded as a lone file, without its package: pytest does this (importlib mode) to a
    # checkout's __init__.py when the folder name is no identifier, like ComfyUI-LD-Portrait.
    # There is nothing to register then; ComfyUI and `import comfyui_ld_portrait` take the
    # branch above.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
