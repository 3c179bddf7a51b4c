"""SD1.5 transparent attention: our split (weight diffs + TemporalResidual) equals the
attention-sharing unit of the reference (huchenlei/ComfyUI-layerdiffuse, frames=1, no control),
re-stated here with its full temporal attention (temporal_q/k and a softmax over frames)."""
import pytest
import torch
from helpers.sd15_attention import HEADS, Attention, attention_sharing_file, reference_unit, sd15_like_model

from comfyui_ld_portrait.layerdiffusion.attention_sharing import (
    SD15_ATTENTION_MODULES,
    TemporalResidual,
    check_attention_sharing_keys,
    is_attention_sharing_file,
    split_attention_sharing,
)


def test_split_plus_residual_equals_the_reference_unit():
    model, modules = sd15_like_model()
    state = attention_sharing_file(modules)
    assert is_attention_sharing_file(state)
    check_attention_sharing_keys(state)
    targets = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    deltas, temporal = split_attention_sharing(state, targets)
    assert len(deltas) == 4 * 32 and len(temporal) == 32
    g = torch.Generator().manual_seed(2)
    for index in (0, 1, 31):  # a self-attention, a cross-attention, the mid block
        path = SD15_ATTENTION_MODULES[index]
        att = modules[path]
        width = att.to_q.out_features
        h = torch.randn(2, 10, width, generator=g)
        context = None if path.endswith("attn1") else torch.randn(2, 7, 6, generator=g)
        with torch.no_grad():
            expected = reference_unit(att.state_dict(), state, index, h, context, heads=HEADS)
            # What the host does: add the diffs to the weights, then call the object patch.
            patched = Attention(width, att.to_k.in_features)
            patched.load_state_dict(att.state_dict())
            for name in ("to_q", "to_k", "to_v", "to_out.0"):
                layer = patched.to_out[0] if name == "to_out.0" else getattr(patched, name)
                layer.weight += deltas[f"diffusion_model.{path}.{name}.weight"]
            actual = TemporalResidual(patched, temporal[f"diffusion_model.{path}"])(h, context=context)
        assert expected.abs().max() > 0.1
        assert (actual - expected).abs().max().item() <= 1e-5, path


def test_wrapper_keeps_the_wrapped_names_and_scales_by_strength():
    att = Attention(8, 8)
    weights = {f"{n}.{p}": torch.randn(8, 8) if p == "weight" and n != "temporal_n" else torch.randn(8)
               for n in ("temporal_i", "temporal_n", "temporal_v", "temporal_o") for p in ("weight", "bias")}
    wrapper = TemporalResidual(att, weights)
    assert wrapper.to_q is att.to_q and wrapper.heads == HEADS
    # The model's weight names are unchanged under the wrapper (the host patches them by name).
    assert list(wrapper.state_dict()) == list(att.state_dict())
    assert [n for n, _ in wrapper.named_parameters()] == [n for n, _ in att.named_parameters()]
    h = torch.randn(1, 5, 8)
    with torch.no_grad():
        full = TemporalResidual(att, weights)(h) - att(h)
        half = TemporalResidual(att, weights, scale=0.5)(h) - att(h)
    assert torch.allclose(half, full * 0.5, atol=1e-6)


def test_sd15_file_on_another_model_is_refused():
    _, modules = sd15_like_model()
    state = attention_sharing_file(modules)
    sdxl_targets = {"diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight": (640, 640)}
    with pytest.raises(ValueError, match=r"does not fit this model. 127 weights do not exist.*1 have incompatible shapes.*SD1.5 models"):
        split_attention_sharing(state, sdxl_targets)
    model, _ = sd15_like_model(context_width=2048)  # SD1.5 names, SDXL-like text width
    targets = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"incompatible shapes.*attn2.to_k.weight"):
        split_attention_sharing(state, targets)


def test_key_layout_is_checked():
    _, modules = sd15_like_model()
    state = attention_sharing_file(modules)
    del state["hookers.layers.3.temporal_o.bias"]
    state["hookers.layers.3.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"1 missing \(hookers.layers.3.temporal_o.bias\); 1 unexpected"):
        check_attention_sharing_keys(state)
    assert not is_attention_sharing_file({"diffusion_model.x::lora::0": torch.zeros(1)})
