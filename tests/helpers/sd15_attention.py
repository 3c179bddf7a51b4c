"""A tiny SD1.5-shaped model (the 32 attention modules the SD1.5 transparent attention file
patches) and a random file in that file's layout, for the library and node tests."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from comfyui_ld_portrait.layerdiffusion.attention_sharing import SD15_ATTENTION_MODULES

HEADS = 2
RANK = 4


class Attention(nn.Module):
    """The shape of ComfyUI's CrossAttention: to_q/k/v without bias, to_out = [Linear, Dropout]."""

    def __init__(self, width, context_width):
        super().__init__()
        self.heads = HEADS
        self.to_q = nn.Linear(width, width, bias=False)
        self.to_k = nn.Linear(context_width, width, bias=False)
        self.to_v = nn.Linear(context_width, width, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(width, width), nn.Dropout(0.0)])

    def forward(self, x, context=None, value=None, mask=None, transformer_options=None):
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        return self.to_out[1](self.to_out[0](multi_head_attention(q, k, v, self.heads)))


def multi_head_attention(q, k, v, heads):
    b, n, c = q.shape
    split = lambda t: t.view(b, -1, heads, c // heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(b, n, c)


def _width(module_path):
    block = module_path.split(".transformer_blocks")[0]
    return {"input_blocks.1.1": 8, "input_blocks.2.1": 8, "input_blocks.4.1": 12,
            "input_blocks.5.1": 12}.get(block, 16)


def sd15_like_model(context_width=6):
    torch.manual_seed(0)
    root = nn.Module()
    root.diffusion_model = nn.Module()
    modules = {}
    for path in SD15_ATTENTION_MODULES:
        width = _width(path)
        attention = Attention(width, width if path.endswith("attn1") else context_width)
        modules[path] = attention
        parent = root.diffusion_model
        *parts, last = path.split(".")
        for part in parts:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(last, attention)
    return root, modules


def attention_sharing_file(modules, seed=1):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, path in enumerate(SD15_ATTENTION_MODULES):
        att = modules[path]
        width = att.to_q.out_features
        for lora, layer in (("to_q_lora", att.to_q), ("to_k_lora", att.to_k), ("to_v_lora", att.to_v),
                            ("to_out_lora", att.to_out[0])):
            state[f"hookers.layers.{index}.{lora}.0.down.weight"] = torch.randn(RANK, layer.in_features, generator=g) * 0.3
            state[f"hookers.layers.{index}.{lora}.0.up.weight"] = torch.randn(layer.out_features, RANK, generator=g) * 0.3
        for name in ("temporal_i", "temporal_q", "temporal_k", "temporal_v", "temporal_o"):
            state[f"hookers.layers.{index}.{name}.weight"] = torch.randn(width, width, generator=g) / math.sqrt(width)
            state[f"hookers.layers.{index}.{name}.bias"] = torch.randn(width, generator=g) * 0.1
        state[f"hookers.layers.{index}.temporal_n.weight"] = 1 + 0.1 * torch.randn(width, generator=g)
        state[f"hookers.layers.{index}.temporal_n.bias"] = 0.1 * torch.randn(width, generator=g)
    return state


def reference_unit(weights, state, index, h, context, heads=HEADS):
    """The reference attention-sharing unit's forward for frames=1 (huchenlei/ComfyUI-layerdiffuse
    AttentionSharingUnit, no control), from the attention's own weights (``to_q.weight`` ...)
    and the file's tensors; returns what replaces the attention output. Its temporal attention
    is computed in full (temporal_q/k and a softmax over the one frame)."""
    p = f"hookers.layers.{index}."

    def lora(name, layer, x):
        weight = weights[layer + ".weight"] + state[p + name + ".0.up.weight"] @ state[p + name + ".0.down.weight"]
        return F.linear(x, weight, weights.get(layer + ".bias"))

    ctx = h if context is None else context
    o = multi_head_attention(lora("to_q_lora", "to_q", h), lora("to_k_lora", "to_k", ctx),
                             lora("to_v_lora", "to_v", ctx), heads)
    y = h + lora("to_out_lora", "to_out.0", o)
    lin = lambda name, x: F.linear(x, state[p + name + ".weight"], state[p + name + ".bias"])  # noqa: E731
    x = F.layer_norm(y, (y.shape[-1],), state[p + "temporal_n.weight"], state[p + "temporal_n.bias"], 1e-6)
    x = lin("temporal_i", x)
    b, d, c = x.shape
    x = x.reshape(b * d, 1, c)  # "(b f) d c -> (b d) f c" with f = 1
    x = multi_head_attention(lin("temporal_q", x), lin("temporal_k", x), lin("temporal_v", x), heads)
    x = lin("temporal_o", x).reshape(b, d, c)
    return y + x - h
