"""Experts: Keras 3 models over timm/torchvision backbones; import of released checkpoints."""
