"""Fixtures of the robustness tests: the bad-file corpus and configs pointing at the tiny model."""
import pytest

from make_corpus import make_corpus
from robust_helpers import TINY_ARCH


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Case name -> path of every file of tests/robustness/make_corpus.py, written once."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def predict_cfg(tiny_trained):
    """The shipped ``predict`` config pointed at the tiny trained chain."""
    from mlreco_spice.config import load_config

    return load_config("predict", [f"predict.weights={tiny_trained}", "predict.thresholds=null",
                                   *TINY_ARCH])


@pytest.fixture(scope="session")
def train_cfg():
    """``full_chain`` with the tiny architecture (training schema: data, labels, clusters)."""
    from mlreco_spice.config import load_config

    return load_config("full_chain", TINY_ARCH)
