"""The classic MNIST network: two conv layers and two fully connected layers."""

from __future__ import annotations

from torch import nn


class SimpleCNN(nn.Module):
    """conv(3x3) -> relu -> pool -> conv(3x3) -> relu -> pool -> dropout -> fc -> relu
    -> dropout -> fc; for 28x28 MNIST, 421,642 parameters. With num_classes=0 the last
    fc is left off and the network is an encoder of `hidden` features."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        dropout_conv: float = 0.25,
        dropout_fc: float = 0.5,
    ):
        super().__init__()
        c1, c2 = channels
        side = image_size // 4  # two 2x2 max-pools
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(dropout_conv),
        )
        layers = [nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout_fc)]
        # num_classes=0 leaves the classifier off (timm's convention): an encoder of `hidden` features
        self.classifier = nn.Sequential(*layers, *([nn.Linear(hidden, num_classes)] if num_classes else []))
        self.num_features = hidden

    def forward(self, x):
        return self.classifier(self.features(x))
