"""Training on an ld-portrait dataset: a PyTorch dataset with matting augmentations.

``torch_dataset`` imports torch; this package's ``__init__`` does not, so importing the pack
stays light. Use ``from comfyui_ld_portrait.training.torch_dataset import MattingDataset``.
"""
