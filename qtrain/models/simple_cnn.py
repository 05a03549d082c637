"""The classic MNIST network: two conv layers and two fully connected layers."""

from __future__ import annotations

from torch import nn


class SimpleCNN(nn.Module):
    """conv(3x3) -> relu -> pool -> conv(3x3) -> relu -> pool -> dropout -> fc -> relu
    -> dropout -> fc; for 28x28 MNIST, 421,642 parameters."""

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
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout_fc),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
