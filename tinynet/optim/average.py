"""Polyak averaging: an exponential moving average of the weights, used for evaluation.

The weights the optimizer leaves after its last step carry the noise of the last few
batches; their running average does not, and on held-out digits it is slightly better
(docs/training.md). The decay warms up as min(decay, (1 + t) / (10 + t)), so the first
steps are not averaged with the random initialisation for long.
"""

from ..backend import to_device, to_numpy


class WeightAverage:
    """average <- average + (1 - decay_t) (weights - average) after every step."""

    def __init__(self, params, decay=0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the averaging decay must be in [0, 1), got {decay}")
        self.decay, self.t = decay, 0
        self.average = {name: value.copy() for name, value in params.items()}

    def update(self, params):
        """Fold the current weights into the average (in place)."""
        self.t += 1
        rate = 1.0 - min(self.decay, (1 + self.t) / (10 + self.t))
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
