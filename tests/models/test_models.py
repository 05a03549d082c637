"""Models: shapes, the small-image stem, offline loading of pretrained timm weights."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from qtrain.errors import ArgumentError
from qtrain.models.simple_cnn import SimpleCNN
from qtrain.models.timm_models import resnet, vit


def test_simple_cnn_is_the_classic_mnist_net():
    model = SimpleCNN(num_classes=10, in_channels=1, image_size=28)
    assert sum(p.numel() for p in model.parameters()) == 421_642
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_resnet_small_stem_keeps_spatial_resolution():
    model = resnet(num_classes=10, in_channels=1, small_input_stem=True)
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    features = model.forward_features(torch.randn(2, 1, 32, 32))
    assert features.shape[-1] == 4  # 32 / 8: only the three strided stages downsample
    imagenet = resnet(num_classes=10, in_channels=3, small_input_stem=False)
    assert imagenet.forward_features(torch.randn(2, 3, 32, 32)).shape[-1] == 1


def test_resnet_loads_pretrained_weights_from_a_local_file(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    weights = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(weights))
    model = resnet(num_classes=5, in_channels=3, pretrained=True, weights_file=str(weights), small_input_stem=False)
    assert torch.equal(model.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 5  # a new head for the new classes


def test_missing_weights_file_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="^weights_file=.*nothing.pt: no such file"):
        resnet(num_classes=10, in_channels=3, weights_file=str(tmp_path / "nothing.pt"))


def test_vit_takes_image_and_patch_size():
    model = vit(num_classes=10, in_channels=1, img_size=16, patch_size=4)
    assert model.patch_embed.num_patches == 16
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(ArgumentError, match="^patch_size=5: must divide the image size 16"):
        vit(num_classes=10, in_channels=1, img_size=16, patch_size=5)
