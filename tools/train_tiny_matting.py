"""Train a tiny trimap-based matting network on an ld-portrait dataset, on CPU, for a few steps.

A demonstration of :class:`comfyui_ld_portrait.training.torch_dataset.MattingDataset` with a
``DataLoader``, not a useful model::

    ld-portrait demo /tmp/ldp-demo --count 8 --size 128 --gate min_side=64
    python tools/train_tiny_matting.py /tmp/ldp-demo/dataset --steps 60

(``--gate min_side=64`` because the default quality gate rejects portraits under 256 px; or
pass ``--include-rejected`` here.) The samples are split into training and a held-out part
(``--holdout``); the script prints the loss as it trains and the SAD (Adobe DIM convention:
sum of absolute alpha errors over the trimap's unknown region, / 1000) of the untrained and the
trained network on the held-out samples, which it never trains on.

The network sees the composite and the trimap (one-hot, 6 channels in all) and predicts alpha
in the unknown region; known regions are taken from the trimap. Loss: mean absolute alpha
error over the unknown region.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from comfyui_ld_portrait.evaluation.metrics import sad_error
from comfyui_ld_portrait.training.torch_dataset import (AugmentOptions, MattingDataset,
                                                        list_training_ids, seed_worker, split_ids)


class TinyMattingNet(nn.Module):
    """Two-level U-Net, about 26k parameters: (image [B,3,H,W], trimap [B,1,H,W]) -> alpha."""

    def __init__(self, width: int = 16):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))

        self.encode = block(6, width)
        self.down = block(width, 2 * width)
        self.decode = block(3 * width, width)
        self.head = nn.Conv2d(width, 1, 1)

    @staticmethod
    def trimap_channels(trimap: torch.Tensor) -> torch.Tensor:
        """0 / 0.5 / 1 trimap -> one-hot background, unknown, foreground [B,3,H,W]."""
        return torch.cat([(trimap < 0.25), (trimap >= 0.25) & (trimap <= 0.75),
                          (trimap > 0.75)], dim=1).float()

    def forward(self, image: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, self.trimap_channels(trimap)], dim=1)
        skip = self.encode(x)
        deep = self.down(F.avg_pool2d(skip, 2, ceil_mode=True))
        deep = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.head(self.decode(torch.cat([skip, deep], dim=1))))
        # Known regions come from the trimap; only the unknown band is predicted.
        unknown = (trimap > 0.25) & (trimap < 0.75)
        return torch.where(unknown, alpha, (trimap > 0.75).float())


def unknown_l1(pred: torch.Tensor, truth: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """Mean absolute alpha error over the unknown region (0 when there is none)."""
    unknown = ((trimap > 0.25) & (trimap < 0.75)).float()
    return (torch.abs(pred - truth) * unknown).sum() / unknown.sum().clamp(min=1.0)


def held_out_sad(model: nn.Module, dataset: MattingDataset) -> float:
    """Mean DIM SAD (/1000) over the unknown region of every held-out item."""
    model.eval()
    values = []
    with torch.no_grad():
        for index in range(len(dataset)):
            item = dataset[index]
            pred = model(item["image"][None], item["trimap"][None])[0, 0].numpy()
            trimap = np.round(item["trimap"][0].numpy() * 255).astype(np.uint8)  # 0/128/255
            values.append(sad_error(pred, item["alpha"][0].numpy(), trimap))
    model.train()
    return float(np.mean(values))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="ld-portrait dataset folder (e.g. the demo's OUT/dataset)")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps (default 60)")
    parser.add_argument("--size", type=int, default=64, help="training crop side after resize (default 64)")
    parser.add_argument("--crop", type=int, default=96, help="crop side in the source image (default 96)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    parser.add_argument("--holdout", type=float, default=0.25,
                        help="fraction of samples held out for the SAD (default 0.25)")
    parser.add_argument("--seed", type=int, default=0, help="seed of split, data and weights (default 0)")
    parser.add_argument("--backgrounds", help="folder of background pictures (default: "
                                              "procedural backgrounds)")
    parser.add_argument("--include-rejected", action="store_true",
                        help="also train on samples the quality gate rejected (kept images)")
    parser.add_argument("--log-every", type=int, default=10, help="print the loss every N steps")
    return parser


def main(argv=None, stdout=None) -> dict:
    """Run the example; returns ``{"losses": [...], "sad_before": x, "sad_after": y}``."""
    stdout = stdout or sys.stdout
    args = build_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    root = Path(args.root)
    ids = list_training_ids(root, include_rejected=args.include_rejected)
    if len(ids) < 2:
        raise SystemExit(f"{root}: need at least 2 samples (one to train, one to hold out).")
    train_ids, held_ids = split_ids(ids, args.holdout, args.seed)
    if not held_ids:
        train_ids, held_ids = train_ids[:-1], train_ids[-1:]
    options = AugmentOptions(size=args.size, crop=args.crop)
    train_set = MattingDataset(root, train_ids, options=options, seed=args.seed,
                               backgrounds=args.backgrounds)
    held_set = MattingDataset(root, held_ids, options=options, seed=args.seed + 1,
                              backgrounds=args.backgrounds, augment=False)
    loader_seed = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers, worker_init_fn=seed_worker,
                                         generator=loader_seed, drop_last=False)
    model = TinyMattingNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    sad_before = held_out_sad(model, held_set)
    stdout.write(f"{len(train_ids)} training / {len(held_ids)} held-out samples, "
                 f"{sum(p.numel() for p in model.parameters())} parameters\n")
    losses, epoch = [], 0
    while len(losses) < args.steps:
        train_set.set_epoch(epoch)
        for batch in loader:
            pred = model(batch["image"], batch["trimap"])
            loss = unknown_l1(pred, batch["alpha"], batch["trimap"])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            if len(losses) % args.log_every == 0 or len(losses) == args.steps:
                stdout.write(f"step {len(losses):4d}  loss {loss.item():.4f}\n")
            if len(losses) >= args.steps:
                break
        epoch += 1
    sad_after = held_out_sad(model, held_set)
    stdout.write(f"held-out SAD (unknown region, /1000, {args.size}x{args.size}): untrained "
                 f"{sad_before:.4f} -> trained {sad_after:.4f}\n")
    return {"losses": losses, "sad_before": sad_before, "sad_after": sad_after}


if __name__ == "__main__":
    main()
