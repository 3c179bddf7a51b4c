"""ComfyUI-LD-Portrait: portrait mattes with Layer Diffusion and connectivity priors.

ComfyUI imports this file as a custom node pack. It must import nothing heavy and nothing
from the host, so the pack also works as a plain library (`import comfyui_ld_portrait`).
"""
if __package__:
    def __getattr__(name: str):
        """The node mappings, imported on first use (PEP 562): ComfyUI reads them right after
        importing the pack (``hasattr``/``getattr``), while ``import comfyui_ld_portrait.cli``
        (the ``ld-portrait`` command) never loads the nodes and the numpy they import."""
        if name not in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            from . import nodes
        except AttributeError as error:  # hasattr() would hide it: the pack would load empty
            raise ImportError(f"loading the LD-Portrait nodes failed: {error}") from error
        globals().update(NODE_CLASS_MAPPINGS=nodes.NODE_CLASS_MAPPINGS,
                         NODE_DISPLAY_NAME_MAPPINGS=nodes.NODE_DISPLAY_NAME_MAPPINGS)
        return globals()[name]
else:
    # Loaded as a lone file, without its package: pytest does this (importlib mode) to a
    # checkout's __init__.py when the folder name is no identifier, like ComfyUI-LD-Portrait.
    # There is nothing to register then; ComfyUI and `import comfyui_ld_portrait` take the
    # branch above.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
