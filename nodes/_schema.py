"""Node declarations, written once and turned into the class the running host wants.

Every node class of this package states what it is in plain Python, with no host import:

* ``DISPLAY_NAME``, ``CATEGORY``, ``DESCRIPTION``, ``FUNCTION`` (the method that runs it),
  ``OUTPUTS`` (:class:`Output` entries: type, name and tooltip of each output together, in
  slot order), optionally ``OUTPUT_NODE``, ``DEPRECATED``, ``HIDDEN`` (argument name -> host
  value, such as ``{"api_graph": "PROMPT"}``) and ``IS_CHANGED`` (the fingerprint of the
  inputs that decides whether the host runs the node again);
* ``inputs()``: a classmethod returning the :class:`Input` entries in widget order (a method,
  not a constant: file lists, presets and library ranges are read when the host asks).

:func:`comfy_node` then makes the class the host sees, in one of two forms:

* Inside ComfyUI, where ``comfy_api.latest`` exists, a V3 node: an ``io.ComfyNode`` subclass
  whose ``define_schema`` returns an ``io.Schema`` (``io.Float.Input``, ``io.Mask.Output`` ...)
  and whose ``execute`` runs ``FUNCTION`` and returns an ``io.NodeOutput``.
* Without the host (tests, scripts, the library), the classic form: the class itself, given
  ``INPUT_TYPES``, ``RETURN_TYPES``, ``RETURN_NAMES`` and ``OUTPUT_TOOLTIPS`` built from the
  same entries.

Both forms carry ``DECLARED``, the declared class: ``Node.DECLARED().<FUNCTION>(...)`` runs a
node directly in either form (scripts, and host probes that import ComfyUI's modules).

Why two forms: ``comfy_api`` ships only inside the host (it is not on PyPI), and the pack must
import, run and be tested without it. Both forms come from the one declaration, so node ids,
input names and order, defaults, ranges and output slots cannot differ between them; a host
test compares them on every supported host.

The one difference between the supported hosts that matters here: ComfyUI 0.3.64 does not check
a V3 combo's value against its choices (0.8.0 does), so on hosts before 0.8 the V3 node gets a
``validate_inputs`` that refuses a value not among the choices before the graph runs, as the
classic combo was refused.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from typing import Any

from ._host import host_module

__all__ = ["Input", "Output", "ALPHA_TOOLTIP", "INVERT_TOOLTIP", "socket", "image", "mask", "alpha",
           "invert", "switch", "whole_number", "number", "text", "choice", "from_field", "comfy_node",
           "node_mappings", "classic_input_types"]

#: Tooltip of every alpha socket (our alpha: 1 = opaque, unlike core's inverted MASK).
ALPHA_TOOLTIP = "Portrait alpha matte, 1 = opaque portrait, 0 = background (MASK [B,H,W])."
#: Tooltip of the ``invert`` switch offered where core's inverted MASK may be plugged in.
INVERT_TOOLTIP = (
    "Turn on when the masks come from core nodes such as Load Image, whose MASK is 1 - alpha "
    "(1 = transparent); the node then uses 1 - mask as alpha.")

_WIDGETS = ("INT", "FLOAT", "BOOLEAN", "STRING", "COMBO")


@dataclass(frozen=True)
class Input:
    """One input of a node: a socket (``IMAGE``, ``MASK``, ``LATENT``, ``MODEL`` or a custom
    type) or a widget (``INT``, ``FLOAT``, ``BOOLEAN``, ``STRING``, ``COMBO``)."""

    name: str
    kind: str
    tooltip: str
    default: Any = None
    min: Any = None
    max: Any = None
    step: Any = None
    choices: tuple = ()
    optional: bool = False
    multiline: bool = False
    force_input: bool = False
    control_after_generate: bool = False

    @property
    def keeps_default_off_step(self) -> bool:
        """True for a FLOAT whose default is not a multiple of its step: the frontend rounds a
        FLOAT widget to its step unless told not to (``round: False``), and a library default
        such as 2/255 must reach the library unchanged."""
        if self.kind != "FLOAT" or self.step is None or self.default is None:
            return False
        return abs(round(self.default / self.step) * self.step - self.default) > 1e-9

    def classic(self) -> tuple:
        """The ``INPUT_TYPES`` entry: ``(type, options)``; a combo's type is its choice list."""
        options = {"default": self.default, "min": self.min, "max": self.max, "step": self.step,
                   "round": False if self.keeps_default_off_step else None,
                   "multiline": self.multiline or None, "forceInput": self.force_input or None,
                   "control_after_generate": self.control_after_generate or None,
                   "tooltip": self.tooltip}
        kind = list(self.choices) if self.kind == "COMBO" else self.kind
        return kind, {key: value for key, value in options.items() if value is not None}


@dataclass(frozen=True)
class Output:
    """One output slot: its type, name and tooltip stand together, so they cannot drift apart
    when an output is added, removed or moved."""

    kind: str
    name: str
    tooltip: str


# --- inputs the node modules share -------------------------------------------------------------

def socket(name: str, kind: str, tooltip: str, optional: bool = False) -> Input:
    """A socket without a widget (``MASK``, ``LATENT``, ``MODEL`` or a custom type)."""
    return Input(name, kind, tooltip, optional=optional)


def image(name: str, tooltip: str, optional: bool = False) -> Input:
    """An IMAGE socket (float32 ``[B, H, W, C]`` in 0..1)."""
    return Input(name, "IMAGE", tooltip, optional=optional)


def mask(name: str, tooltip: str, optional: bool = False) -> Input:
    """A MASK socket (float32 ``[B, H, W]``)."""
    return Input(name, "MASK", tooltip, optional=optional)


def alpha(tooltip: str = ALPHA_TOOLTIP) -> Input:
    """The ``alpha`` MASK socket (1 = opaque portrait)."""
    return Input("alpha", "MASK", tooltip)


def invert(tooltip: str = INVERT_TOOLTIP, optional: bool = True) -> Input:
    """The ``invert`` switch (off by default) for core's inverted MASK."""
    return Input("invert", "BOOLEAN", tooltip, default=False, optional=optional)


def switch(name: str, default: bool, tooltip: str, optional: bool = False) -> Input:
    """A BOOLEAN widget."""
    return Input(name, "BOOLEAN", tooltip, default=default, optional=optional)


def whole_number(name: str, default, low, high, tooltip: str, step=None, optional: bool = False,
                 **flags) -> Input:
    """An INT widget from ``low`` to ``high`` (the frontend's own step without ``step``);
    ``flags``: ``force_input``, ``control_after_generate``."""
    return Input(name, "INT", tooltip, default=default, min=low, max=high, step=step,
                 optional=optional, **flags)


def number(name: str, default, low, high, tooltip: str, step=None, optional: bool = False) -> Input:
    """A FLOAT widget from ``low`` to ``high``."""
    return Input(name, "FLOAT", tooltip, default=default, min=low, max=high, step=step, optional=optional)


def text(name: str, tooltip: str, default=None, optional: bool = False, **flags) -> Input:
    """A STRING widget; ``flags``: ``multiline``, ``force_input`` (a socket only, no widget)."""
    return Input(name, "STRING", tooltip, default=default, optional=optional, **flags)


def choice(name: str, choices, default, tooltip: str, optional: bool = False) -> Input:
    """A COMBO widget offering ``choices`` (strings)."""
    return Input(name, "COMBO", tooltip, default=default, choices=tuple(choices), optional=optional)


def from_field(record_class, name: str, step=None, optional: bool = False) -> Input:
    """The widget of the ``bounded_field`` ``name`` of a settings dataclass: default, range and
    tooltip come from the field, so the node cannot drift from the library. The field's
    annotation decides INT or FLOAT (:func:`..base.fields.field_kind`, the one rule)."""
    from ..base.fields import field_kind

    spec = next(spec for spec in dataclasses.fields(record_class) if spec.name == name)
    kind = "INT" if field_kind(spec)[0] == "int" else "FLOAT"
    return Input(name, kind, spec.metadata["doc"], default=spec.default, min=spec.metadata["min"],
                 max=spec.metadata["max"], step=step, optional=optional)


# --- the classic form --------------------------------------------------------------------------

def classic_input_types(inputs, hidden: dict | None = None) -> dict:
    """``INPUT_TYPES()`` of a node from its :class:`Input` entries (and hidden inputs)."""
    declared = {"required": {}}
    for entry in inputs:
        declared.setdefault("optional" if entry.optional else "required", {})[entry.name] = entry.classic()
    if hidden:
        declared["hidden"] = dict(hidden)
    return declared


def _classic_node(node):
    """The declared class itself, given the classic attributes the host and tests read."""
    def input_types(cls):
        return classic_input_types(cls.inputs(), getattr(cls, "HIDDEN", None))

    node.INPUT_TYPES = classmethod(input_types)
    node.RETURN_TYPES = tuple(output.kind for output in node.OUTPUTS)
    node.RETURN_NAMES = tuple(output.name for output in node.OUTPUTS)
    node.OUTPUT_TOOLTIPS = tuple(output.tooltip for output in node.OUTPUTS)
    node.DECLARED = node
    return node


# --- the V3 form -------------------------------------------------------------------------------

_STANDARD_TYPES = {"IMAGE": "Image", "MASK": "Mask", "LATENT": "Latent", "MODEL": "Model",
                   "INT": "Int", "FLOAT": "Float", "BOOLEAN": "Boolean", "STRING": "String",
                   "COMBO": "Combo"}


def _io_type(io, kind: str):
    """The ``io`` class of a type name: ``io.Mask`` for ``"MASK"``, ``io.Custom(name)`` otherwise."""
    name = _STANDARD_TYPES.get(kind)
    return getattr(io, name) if name else io.Custom(kind)


def _v3_input(io, entry: Input):
    """``io.<Type>.Input`` for one entry. Options left unset are passed as None, which the
    host leaves out of the declaration, as the classic form does."""
    options = {"optional": entry.optional, "tooltip": entry.tooltip}
    if entry.kind in _WIDGETS:
        options["default"] = entry.default
    if entry.kind in ("INT", "FLOAT"):
        options.update(min=entry.min, max=entry.max, step=entry.step)
    if entry.kind == "INT":
        options["control_after_generate"] = entry.control_after_generate or None
    if entry.kind == "FLOAT":
        options["round"] = False if entry.keeps_default_off_step else None
    if entry.kind == "STRING":
        options["multiline"] = entry.multiline or None
    if entry.kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
        options["force_input"] = entry.force_input or None
    if entry.kind == "COMBO":
        options["options"] = list(entry.choices)
    return _io_type(io, entry.kind).Input(entry.name, **options)


def _host_checks_combo_values() -> bool:
    """Whether the host refuses a V3 combo value outside its choices by itself: ComfyUI 0.8.0
    does, 0.3.64 does not (it checks only classic combos, whose type is the list). Versions in
    between were not tried and count as not checking: a second check costs nothing."""
    version = getattr(host_module("comfyui_version"), "__version__", "0")
    try:
        return tuple(int(part) for part in version.split(".")[:2]) >= (0, 8)
    except ValueError:
        return False


class _ComboCheck:
    """``validate_inputs`` of a V3 node on hosts that do not check combo values: the host reads
    the inputs to pass from the signature (only the combos, so its own range checks of the other
    widgets stay on), and the signature is built when the host first asks, not at import."""

    def __init__(self, node):
        self.node = node

    @property
    def __signature__(self):
        names = [entry.name for entry in self.node.inputs() if entry.kind == "COMBO"]
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature([inspect.Parameter("cls", kind),
                                  *(inspect.Parameter(name, kind, default=None) for name in names)])

    def __call__(self, cls, **values):
        combos = {entry.name: entry for entry in self.node.inputs() if entry.kind == "COMBO"}
        for name, value in values.items():
            # None: a linked input, unknown until the graph runs.
            if name in combos and value is not None and value not in combos[name].choices:
                return f"{name}: {value!r} is not one of {list(combos[name].choices)}"
        return True


def _node_output(io, result):
    """A classic result (a tuple, or ``{"ui": ..., "result": ...}``) as an ``io.NodeOutput``."""
    if isinstance(result, dict):
        return io.NodeOutput(*result.get("result", ()), ui=result.get("ui"))
    return io.NodeOutput(*result)


def _v3_node(io, node):
    """An ``io.ComfyNode`` subclass that declares ``node`` with ``io.Schema`` and runs it."""
    hidden = dict(getattr(node, "HIDDEN", {}))

    def define_schema(cls):
        return io.Schema(
            node_id=node.__name__, display_name=node.DISPLAY_NAME, category=node.CATEGORY,
            description=node.DESCRIPTION, inputs=[_v3_input(io, entry) for entry in node.inputs()],
            outputs=[_io_type(io, output.kind).Output(display_name=output.name, tooltip=output.tooltip)
                     for output in node.OUTPUTS],
            hidden=[io.Hidden(kind) for kind in hidden.values()],
            is_output_node=bool(getattr(node, "OUTPUT_NODE", False)),
            is_deprecated=bool(getattr(node, "DEPRECATED", False)))

    def execute(cls, **inputs):
        for argument, kind in hidden.items():
            inputs[argument] = getattr(cls.hidden, io.Hidden(kind).name)
        return _node_output(io, getattr(node(), node.FUNCTION)(**inputs))

    namespace = {"__module__": node.__module__, "__doc__": node.__doc__, "DECLARED": node,
                 "define_schema": classmethod(define_schema), "execute": classmethod(execute)}
    if hasattr(node, "IS_CHANGED"):
        namespace["fingerprint_inputs"] = classmethod(lambda cls, **inputs: node.IS_CHANGED(**inputs))
    if not _host_checks_combo_values():
        namespace["validate_inputs"] = classmethod(_ComboCheck(node))
    return type(node.__name__, (io.ComfyNode,), namespace)


@functools.lru_cache(maxsize=None)
def _host_io():
    """The host's ``comfy_api.latest.io``, or None without the host (looked up once, not per node)."""
    latest = host_module("comfy_api.latest")
    return None if latest is None else latest.io


def comfy_node(node):
    """Class decorator: the V3 node inside a host that has ``comfy_api.latest``, else the class
    in its classic form (see the module documentation)."""
    io = _host_io()
    return _classic_node(node) if io is None else _v3_node(io, node)


def node_mappings(*nodes) -> tuple[dict, dict]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` of classes made by :func:`comfy_node`;
    the node id is the declared class's name."""
    classes = {node.DECLARED.__name__: node for node in nodes}
    return classes, {node_id: node.DECLARED.DISPLAY_NAME for node_id, node in classes.items()}
