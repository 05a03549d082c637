"""Encoders from timm (ResNet, ViT), built offline by default and fit for small images."""

from __future__ import annotations

from pathlib import Path

import timm
from torch import nn

from qtrain.errors import ArgumentError


def create_timm_model(name: str, pretrained: bool, weights_file: str | None, **kwargs) -> nn.Module:
    """`timm.create_model`, with pretrained weights from the hub or from a local file
    (`weights_file`: a .safetensors/.pth/.bin state dict, for offline machines)."""
    if weights_file is not None:
        if not Path(weights_file).is_file():
            raise ArgumentError("weights_file", weights_file, "no such file; give a timm state dict file")
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file)}
    try:
        return timm.create_model(name, pretrained=pretrained or weights_file is not None, **kwargs)
    except RuntimeError as error:
        if "No pretrained weights" in str(error) or "Unknown model" in str(error):
            raise ArgumentError("name", name, f"{error}; see timm.list_models(pretrained=True)") from None
        raise
    except OSError as error:  # hub unreachable, or the file does not hold weights
        raise ArgumentError(
            "pretrained",
            pretrained,
            f"cannot load pretrained {name} weights ({type(error).__name__}: {error}); "
            "offline, give weights_file=<local state dict> or pretrained=false",
        ) from None


def resnet(
    num_classes: int,
    in_channels: int,
    name: str = "resnet18",
    pretrained: bool = False,
    weights_file: str | None = None,
    small_input_stem: bool = True,
    drop_rate: float = 0.0,
) -> nn.Module:
    """A timm ResNet. `small_input_stem` swaps the 7x7/2 conv and max-pool for one 3x3/1
    conv (the CIFAR stem), so 8-32 px images are not shrunk to nothing; that conv is
    freshly initialized even when the rest is pretrained."""
    model = create_timm_model(
        name, pretrained, weights_file, num_classes=num_classes, in_chans=in_channels, drop_rate=drop_rate
    )
    if small_input_stem:
        model.conv1 = nn.Conv2d(in_channels, model.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def vit(
    num_classes: int,
    in_channels: int,
    img_size: int,
    patch_size: int,
    name: str = "vit_tiny_patch16_224",
    pretrained: bool = False,
    weights_file: str | None = None,
    drop_rate: float = 0.0,
) -> nn.Module:
    """A timm Vision Transformer at any `img_size`/`patch_size` (timm resamples
    pretrained position and patch embeddings to fit)."""
    if img_size % patch_size:
        raise ArgumentError("patch_size", patch_size, f"must divide the image size {img_size}")
    return create_timm_model(
        name,
        pretrained,
        weights_file,
        num_classes=num_classes,
        in_chans=in_channels,
        img_size=img_size,
        patch_size=patch_size,
        drop_rate=drop_rate,
    )
