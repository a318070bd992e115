import numpy as np
import pytest
import torch

from inrlab.data import data_dir

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def small_image():
    """A 32×32 RGB crop of astronaut as an Image signal (fast to fit)."""
    from inrlab import Image

    return Image("astronaut", size=32)


@pytest.fixture
def kodak():
    d = data_dir()
    if d is None or not (d / "kodak" / "kodim01.png").exists():
        pytest.skip("Kodak images not found: set INRLAB_DATA to the folder holding kodak/")
    return d / "kodak"


@pytest.fixture
def rng():
    return np.random.default_rng(0)
