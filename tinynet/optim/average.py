"""Polyak averaging: an exponential moving average of the weights, used for evaluation.

The weights the optimizer leaves after its last step carry the noise of the last few
batches; their running average does not, and on held-out digits it is slightly better
(docs/training.md). The decay warms up as min(decay, (1 + t) / (10 + t)), so the first
steps are not averaged with the random initialisation for long.

Like an optimizer's step, an update is two halves (tinynet.optim.base.StepScalars):
`begin_step` computes the step's rate on the host, `apply` folds the weights in; a step
captured in a CUDA graph keeps the rate on the device and captures only `apply`.
"""

from ..backend import to_device, to_numpy
from .base import StepScalars


class WeightAverage(StepScalars):
    """average <- average + rate_t (weights - average) after every step, rate_t = 1 - decay_t."""

    scalar_names = ("rate",)

    def __init__(self, params, decay=0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the averaging decay must be in [0, 1), got {decay}")
        super().__init__()
        self.decay = decay
        self.average = {name: value.copy() for name, value in params.items()}

    def step_scalars(self):
        return {"rate": 1.0 - min(self.decay, (1 + self.t) / (10 + self.t))}

    def update(self, params):
        """Fold the current weights into the average (in place): begin_step, then apply."""
        self.begin_step()
        self.apply(params)

    def apply(self, params):
        """The array half: fold `params` into the average with the current rate."""
        rate = self.scalars["rate"]
        for name, average in self.average.items():
            difference = params[name] - average
            difference *= rate
            average += difference

    def state_dict(self):
        return {"t": self.t, **{name: to_numpy(value) for name, value in self.average.items()}}

    def load_state_dict(self, flat, xp):
        self.t = int(flat["t"])
        for name, average in self.average.items():
            average[...] = to_device(flat[name], xp)
