"""scikit-learn's handwritten digits: 1,797 8x8 images shipped inside scikit-learn."""

from __future__ import annotations

from sklearn.datasets import load_digits

from qtrain.data.in_memory import InMemoryImageData, RawSplits


class DigitsData(InMemoryImageData):
    """No download and no official test split: `test_fraction` of the images, stratified
    and seeded by `split_seed`, is held out for testing."""

    def load(self) -> RawSplits:
        digits = load_digits()
        images = (digits.images / 16.0).reshape(-1, 1, 8, 8)
        return RawSplits(images, digits.target, None, None, [str(c) for c in digits.target_names])
