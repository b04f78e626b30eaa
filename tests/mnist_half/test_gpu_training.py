"""A training step replayed from a CUDA graph (tinynet.accel.gpu.graph) against the same steps
called eagerly. It needs CuPy and a device, and uses the application (mnist_half.training),
so it lives outside tests/tinynet."""

import numpy as np
import pytest

from tinynet.backend import gpu_unavailable_reason

GPU_REASON = gpu_unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPU_REASON is not None, reason=f"needs a GPU: {GPU_REASON}")]


@pytest.fixture
def cp():
    import cupy

    return cupy


def normwise_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def test_trainer_replaying_a_cuda_graph_matches_eager_steps(cp):
    """Same data, same dropout seeds, same schedule: the graph-replayed run and the eager
    run hold the same weights after the warm-up, the capture and several replays."""
    from mnist_half.config import DEFAULTS, PRESETS
    from mnist_half.data import Dataset
    from mnist_half.training import Trainer

    images = np.random.default_rng(0).random((40, 28, 28), dtype=np.float32)
    digits = Dataset(images, np.zeros(40, np.int64), "test")
    config = {**DEFAULTS, **PRESETS["quick"], "hidden": 8, "layers": 2, "batch_size": 6, "eval_digits": 4,
              "warmup": 2, "iters": 20}
    runs = {}
    for graph in (False, True):
        trainer = Trainer({**config, "cuda_graph": graph}, cp, digits, digits)
        for _ in range(6):
            trainer.step()
        runs[graph] = (trainer.model.named_params(), trainer.pop_train_loss(), trainer)
    assert runs[True][2].graph.captured and runs[False][2].graph is None
    (eager, eager_loss, eager_trainer), (replayed, replayed_loss, replayed_trainer) = runs[False], runs[True]
    assert abs(eager_loss - replayed_loss) < 1e-6
    for name in eager:  # the weights, and their average (updated inside the graph)
        assert normwise_error(cp.asnumpy(replayed[name]), cp.asnumpy(eager[name])) < 1e-5, name
        assert normwise_error(cp.asnumpy(replayed_trainer.average.average[name]),
                              cp.asnumpy(eager_trainer.average.average[name])) < 1e-5, name
