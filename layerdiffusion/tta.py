"""Transparent decoding with test-time augmentation (TTA), any image size, progress and interrupt.

Upstream decodes every image 8 times, once per orientation of the dihedral group (4 quarter
turns, each with and without a horizontal flip), turns every result back, clips it to 0..1 and
takes the per-pixel median. ``decode_transparent(..., passes=8)`` gives the same result. Fewer
passes trade quality for time; the network dominates the cost, so time is proportional to the
number of passes:

====== ================================================ ================= =================
passes orientations                                     merge             cost (x one pass)
====== ================================================ ================= =================
1      identity                                         none              1
2      identity, 180-degree turn                        mean              2
4      the four quarter turns (no flip)                 mean of the       4
                                                        middle two
8      4 quarter turns x {no flip, flip} (upstream)     lower median      8
                                                        (torch.median,
                                                        as upstream)
====== ================================================ ================= =================

How close 1/2/4 passes come to 8 was measured with **random weights only**: three random
networks, a smooth random 128x192 image and a random latent; mean absolute difference of the
alpha channel to the 8-pass result, relative to 1 pass = 1.00.
``benchmarks/bench_decoder.py --tta-quality`` (its random weights): 2 passes 0.65-0.70, 4 passes
0.35-0.38. A first study with another random initialisation compared subsets: 2 passes as
identity + 180 degrees 0.57-0.61 but identity + flip 0.83-0.88; 4 passes as the quarter turns
0.36-0.38 but as identity, flip, 180 degrees and flip + 180 0.48-0.49. Hence the subsets in the
table. Random weights say nothing about real alpha quality; the figures only show which subsets
track the 8-pass median better and that more passes move towards it.

Execution strategies (``strategy``):

- ``"sequential"``: one network call per image and orientation (batch 1), as upstream. On a
  CPU, batching passes is slower than running them one by one (8 passes at 256x256 on 2 cores,
  best of 3: 4.5 s sequential vs 5.1-5.5 s batched by 4 or 8 with 2 threads; 9.2 s vs
  10.1-11.7 s with 1 thread) and needs several times the memory, so this is what ``"auto"``
  picks on CPU.
- ``"batched"``: same-shaped orientations (and images) go through the network together, up to
  ``sub_batch_size`` inputs per call. Faster where the device is under-used by one input (a
  GPU); ``"auto"`` picks it on CUDA and other accelerators. Its speed on a GPU is not measured.

Both strategies give the same result (up to float rounding of batched kernels).

Sizes: the network needs multiples of 64; other sizes are padded (reflect by default, falling
back to replicate when an image is too small to reflect) to the next multiple of 64 and
cropped back. The latent is padded by the same amount divided by 8 with the same mode, so
image and latent stay aligned; images must therefore be exactly 8x their latent.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import LATENT_FACTOR, SIZE_MULTIPLE

__all__ = [
    "UPSTREAM_ORIENTATIONS",
    "PASS_ORIENTATIONS",
    "STRATEGIES",
    "DecodeInterrupted",
    "NonFiniteDecodeError",
    "orient",
    "unorient",
    "merge_passes",
    "choose_strategy",
    "decode_transparent",
]

# (flip horizontally first?, quarter turns for torch.rot90 over dims (H, W)), upstream order.
Orientation = Tuple[bool, int]
UPSTREAM_ORIENTATIONS: Tuple[Orientation, ...] = tuple(
    (flip, turns) for flip in (False, True) for turns in range(4)
)
PASS_ORIENTATIONS: Dict[int, Tuple[Orientation, ...]] = {
    1: ((False, 0),),
    2: ((False, 0), (False, 2)),
    4: ((False, 0), (False, 1), (False, 2), (False, 3)),
    8: UPSTREAM_ORIENTATIONS,
}
STRATEGIES = ("auto", "sequential", "batched")
PAD_MODES = ("reflect", "replicate")


class DecodeInterrupted(RuntimeError):
    """Raised when ``interrupt_check`` returned a true value."""


class NonFiniteDecodeError(ValueError):
    """The decoder produced NaN or infinite values from finite inputs: its weights (or a
    half-precision overflow) are at fault, not the image. The message names the weight file."""


def _check_finite_output(predicted: torch.Tensor, network: nn.Module, dtype: torch.dtype) -> None:
    if bool(torch.isfinite(predicted).all()):
        return
    source = getattr(network, "weight_source", None) or "the decoder's weights"
    hint = (" In half precision this can also be an overflow: start ComfyUI with --fp32-vae."
            if dtype in (torch.float16, torch.bfloat16) else "")
    raise NonFiniteDecodeError(
        f"the transparent decoder produced NaN or infinite values from a finite image and latent: "
        f"the weight file {source} is damaged (download or convert it again), not the input."
        f"{hint}")


def orient(x: torch.Tensor, orientation: Orientation) -> torch.Tensor:
    """Apply an orientation to ``[..., H, W]`` tensors: optional horizontal flip, then rot90."""
    flip, turns = orientation
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k=turns, dims=(-2, -1)) if turns else x


def unorient(x: torch.Tensor, orientation: Orientation) -> torch.Tensor:
    """Undo ``orient``: rotate back, then flip back."""
    flip, turns = orientation
    if turns:
        x = torch.rot90(x, k=-turns, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def merge_passes(stack: torch.Tensor) -> torch.Tensor:
    """Merge per-pass results ``[P, ...]`` into one ``[...]`` as the table in the module says.

    P = 8 uses ``torch.median`` (the lower of the two middle values), exactly as upstream; P = 2
    and P = 4 use the mean of the two middle values; P = 1 is returned as is.
    """
    count = stack.shape[0]
    if count == 1:
        return stack[0]
    if count == 8:
        return torch.median(stack, dim=0).values
    if count == 2:
        return (stack[0] + stack[1]) * 0.5
    middle = torch.sort(stack, dim=0).values[count // 2 - 1 : count // 2 + 1]
    return middle.mean(dim=0)


def choose_strategy(device: torch.device) -> str:
    """``"sequential"`` on CPU (measured faster there), ``"batched"`` elsewhere."""
    return "sequential" if torch.device(device).type == "cpu" else "batched"


def _check_inputs(image: torch.Tensor, latent: torch.Tensor, latent_channels: int = 4) -> None:
    if not isinstance(image, torch.Tensor) or not isinstance(latent, torch.Tensor):
        raise ValueError("image and latent must be torch tensors.")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(
            f"image must be [B, 3, H, W] RGB in 0..1; got shape {tuple(image.shape)}. A ComfyUI "
            "IMAGE [B, H, W, 3] needs image.movedim(-1, 1) first."
        )
    if latent.ndim != 4 or latent.shape[1] != latent_channels:
        family = "a Flux latent" if latent_channels == 16 else "an SD1.5/SDXL latent"
        raise ValueError(
            f"latent must be [B, {latent_channels}, H/8, W/8] ({family}: this decoder was made "
            f"for {latent_channels} latent channels); got shape {tuple(latent.shape)}. Use the "
            "decoder of the model family that made the latent."
        )
    if not image.is_floating_point() or not latent.is_floating_point():
        raise ValueError(
            f"image and latent must be floating point; got {image.dtype} and {latent.dtype}."
        )
    if image.shape[0] != latent.shape[0]:
        raise ValueError(
            f"image batch ({image.shape[0]}) and latent batch ({latent.shape[0]}) differ; pass "
            "the latent the images were decoded from, one latent per image."
        )
    if image.shape[0] == 0 or image.shape[2] == 0 or image.shape[3] == 0:
        raise ValueError(f"image is empty (shape {tuple(image.shape)}).")
    height, width = image.shape[2:]
    lat_h, lat_w = latent.shape[2:]
    if height != lat_h * LATENT_FACTOR or width != lat_w * LATENT_FACTOR:
        raise ValueError(
            f"image size {height}x{width} (HxW) does not match latent size {lat_h}x{lat_w}: the "
            f"image must be exactly {LATENT_FACTOR}x the latent "
            f"({lat_h * LATENT_FACTOR}x{lat_w * LATENT_FACTOR}). Decode the image from this "
            "latent without resizing or cropping either."
        )
    if not bool(torch.isfinite(image).all()) or not bool(torch.isfinite(latent).all()):
        raise ValueError("image or latent contains NaN or infinite values.")


def _split_pad(total: int) -> Tuple[int, int]:
    """Split an image padding (a multiple of 8) into before/after, both multiples of 8."""
    before = (total // LATENT_FACTOR // 2) * LATENT_FACTOR
    return before, total - before


def _pad_amounts(height: int, width: int) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) image padding up to the next multiple of SIZE_MULTIPLE."""
    top, bottom = _split_pad(-height % SIZE_MULTIPLE)
    left, right = _split_pad(-width % SIZE_MULTIPLE)
    return top, bottom, left, right


def _pad_pair(
    image: torch.Tensor, latent: torch.Tensor, pads: Tuple[int, int, int, int], mode: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    top, bottom, left, right = pads
    if not any(pads):
        return image, latent
    lat_pads = tuple(p // LATENT_FACTOR for p in (left, right, top, bottom))
    img_pads = (left, right, top, bottom)
    if mode == "reflect":
        lat_h, lat_w = latent.shape[2:]
        # Reflection needs each pad smaller than the dimension; tiny inputs fall back.
        if max(lat_pads[2:]) >= lat_h or max(lat_pads[:2]) >= lat_w:
            mode = "replicate"
    return F.pad(image, img_pads, mode=mode), F.pad(latent, lat_pads, mode=mode)


def _network_device_dtype(network: nn.Module) -> Tuple[torch.device, torch.dtype, bool]:
    weight = network.conv_out.weight
    device, dtype = weight.device, weight.dtype
    if device.type == "meta":
        raise ValueError("the network has no weights yet (meta device); load a weight file.")
    if device.type == "cpu" and dtype != torch.float32:
        raise ValueError(
            f"the network is {dtype} on CPU; half precision is only supported on a GPU. Load the "
            "decoder with dtype=torch.float32 on CPU."
        )
    return device, dtype, weight.is_contiguous(memory_format=torch.channels_last)


def _plan_calls(
    images: int,
    orientations: Sequence[Orientation],
    square: bool,
    strategy: str,
    sub_batch_size: int,
) -> List[List[Tuple[int, int]]]:
    """Group (image index, orientation index) jobs into network calls.

    Quarter turns 1 and 3 transpose H and W, so unless the padded image is square they cannot
    share a batch with turns 0 and 2.
    """
    jobs = [(i, o) for i in range(images) for o in range(len(orientations))]
    if strategy == "sequential":
        return [[job] for job in jobs]
    groups: Dict[bool, List[Tuple[int, int]]] = {}
    for i, o in jobs:
        transposed = (orientations[o][1] % 2 == 1) and not square
        groups.setdefault(transposed, []).append((i, o))
    calls = []
    for group in groups.values():
        calls.extend(group[s : s + sub_batch_size] for s in range(0, len(group), sub_batch_size))
    return calls


def _check_options(passes: int, strategy: str, sub_batch_size: int, pad_mode: str) -> None:
    """``ValueError`` for a bad option of :func:`decode_transparent`."""
    if passes not in PASS_ORIENTATIONS:
        raise ValueError(f"passes must be one of {sorted(PASS_ORIENTATIONS)}; got {passes!r}.")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    if type(sub_batch_size) is not int or sub_batch_size < 1:
        raise ValueError(f"sub_batch_size must be an integer >= 1; got {sub_batch_size!r}.")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}; got {pad_mode!r}.")


def _decode_orientations(
    network: nn.Module,
    pixels: torch.Tensor,
    lat: torch.Tensor,
    orientations,
    *,
    strategy: str,
    sub_batch_size: int,
    memory_format: torch.memory_format,
    interrupt_check: Optional[Callable[[], object]],
    decoded: Callable[[int], None],
) -> torch.Tensor:
    """Every orientation of a group of padded images, through the network in the calls
    :func:`_plan_calls` plans: ``[orientations, images, 4, H, W]`` float32 on the network's
    device, clamped to 0..1. ``decoded(n)`` is told after each call how many it decoded."""
    count, _, padded_h, padded_w = pixels.shape
    results = torch.empty(
        (len(orientations), count, 4, padded_h, padded_w),
        dtype=torch.float32,
        device=pixels.device,
    )
    calls = _plan_calls(count, orientations, padded_h == padded_w, strategy, sub_batch_size)
    for call in calls:
        if interrupt_check is not None and interrupt_check():
            raise DecodeInterrupted("transparent decoding was interrupted.")
        feed_pixels = torch.cat([orient(pixels[i : i + 1], orientations[o]) for i, o in call])
        feed_latent = torch.cat([orient(lat[i : i + 1], orientations[o]) for i, o in call])
        predicted = network(
            feed_pixels.contiguous(memory_format=memory_format),
            feed_latent.contiguous(memory_format=memory_format),
        )
        # Inputs were checked finite: NaN here comes from the weights; clamping would hide
        # nothing (NaN stays NaN) but later stages would blame the image.
        _check_finite_output(predicted, network, pixels.dtype)
        predicted = predicted.clamp_(0.0, 1.0)
        for row, (i, o) in enumerate(call):
            results[o, i] = unorient(predicted[row], orientations[o])
        decoded(len(call))
    return results


def decode_transparent(
    network: nn.Module,
    image: torch.Tensor,
    latent: torch.Tensor,
    *,
    passes: int = 8,
    strategy: str = "auto",
    sub_batch_size: int = 8,
    pad_mode: str = "reflect",
    on_pass: Optional[Callable[[int, int], None]] = None,
    interrupt_check: Optional[Callable[[], object]] = None,
) -> torch.Tensor:
    """Decode alpha and foreground colour with test-time augmentation.

    Parameters
    ----------
    network : TransparentDecoderUNet
        From ``weights.load_transparent_decoder``; its device and dtype decide where and how
        the work runs (float32 on CPU; float16/bfloat16 allowed on a GPU).
    image : torch.Tensor
        ``[B, 3, H, W]`` RGB decoded by the ordinary VAE, in 0..1 (values outside are clipped,
        as upstream's diffusers pipeline does). Any H and W that are 8x the latent's.
    latent : torch.Tensor
        ``[B, C, H/8, W/8]`` unscaled VAE latent (ComfyUI's ``LATENT["samples"]``); ``C`` is the
        network's ``latent_channels``: 4 (SD1.5 / SDXL) or 16 (Flux).
    passes : {1, 2, 4, 8}
        Number of orientations decoded and merged; 8 reproduces upstream. See module docs.
    strategy : {"auto", "sequential", "batched"}
        How passes are scheduled; ``"auto"``: sequential on CPU, batched elsewhere.
    sub_batch_size : int
        Most inputs per network call in the batched strategy (bounds memory; >= 1). Images are
        processed in groups of ``max(1, sub_batch_size // passes)``.
    pad_mode : {"reflect", "replicate"}
        How sizes that are not multiples of 64 are padded before decoding (cropped after).
    on_pass : callable(done, total), optional
        Called after every network call; ``total = B * passes`` and ``done`` counts decoded
        image-orientations so far.
    interrupt_check : callable(), optional
        Called before every network call. It may raise (ComfyUI's
        ``throw_exception_if_processing_interrupted`` does); if it returns a true value,
        ``DecodeInterrupted`` is raised.

    Returns
    -------
    torch.Tensor
        ``[B, 4, H, W]`` float32 on ``image``'s device, in 0..1: channel 0 alpha (1 = opaque),
        channels 1..3 foreground RGB.

    Raises
    ------
    ValueError
        Bad shapes (latent/image size or batch mismatch), non-finite values, bad options, or a
        half-precision network on CPU.
    DecodeInterrupted
        ``interrupt_check`` returned a true value.
    NonFiniteDecodeError
        The network output NaN or infinity (damaged weights); names the weight file.
    """
    _check_options(passes, strategy, sub_batch_size, pad_mode)
    _check_inputs(image, latent, getattr(network, "latent_channels", 4))
    device, dtype, channels_last = _network_device_dtype(network)
    if strategy == "auto":
        strategy = choose_strategy(device)

    orientations = PASS_ORIENTATIONS[passes]
    batch, _, height, width = image.shape
    pads = _pad_amounts(height, width)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images_per_group = 1 if strategy == "sequential" else max(1, sub_batch_size // passes)

    output = torch.empty((batch, 4, height, width), dtype=torch.float32, device=image.device)
    total, done = batch * passes, 0

    def decoded(count: int) -> None:
        nonlocal done
        done += count
        if on_pass is not None:
            on_pass(done, total)

    with torch.inference_mode():
        for start in range(0, batch, images_per_group):
            stop = min(batch, start + images_per_group)
            pixels = image[start:stop].to(device=device, dtype=dtype).clamp(0.0, 1.0)
            lat = latent[start:stop].to(device=device, dtype=dtype)
            pixels, lat = _pad_pair(pixels, lat, pads, pad_mode)
            results = _decode_orientations(
                network, pixels, lat, orientations, strategy=strategy,
                sub_batch_size=sub_batch_size, memory_format=memory_format,
                interrupt_check=interrupt_check, decoded=decoded,
            )
            if results.device.type == "mps":
                # torch.median on MPS tensors with more than 4 dimensions has crashed (upstream
                # works around it the same way).
                results = results.cpu()
            merged = merge_passes(results)
            top, left = pads[0], pads[2]
            output[start:stop] = merged[:, :, top : top + height, left : left + width].to(
                output.device
            )
    return output
