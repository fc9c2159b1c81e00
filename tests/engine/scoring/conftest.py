"""The real-data fixtures most scoring tests share (a test module that needs other sizes defines its own)."""
import pytest

from engine.data.dataset import load_dataset
from tests.conftest import TEST_DEVICE


@pytest.fixture(scope="module")
def mnist(shared_data):
    """300 real MNIST training digits, 100 test digits."""
    return load_dataset("mnist", shared_data, TEST_DEVICE, train_size=300, test_size=100)


@pytest.fixture(scope="module")
def cifar(cifar_npz):
    """20 real CIFAR-10 training images, 10 test images."""
    return load_dataset(cifar_npz, device=TEST_DEVICE, train_size=20, test_size=10)
