"""Optimizers (section 4.2.6): update parameters in place from their gradients.

Each optimizer keeps its state keyed by the parameter's flat name, so it can be saved
to and restored from a checkpoint (`state_dict` / `load_state_dict`).
"""

from .adadelta import Adadelta
from .adam import Adam
from .average import WeightAverage
from .base import Optimizer
from .clip import clip_grad_norm
from .sgd import SGD
from .update import update_parameters

OPTIMIZERS = {"adam": Adam, "adadelta": Adadelta, "sgd": SGD}

__all__ = ["clip_grad_norm", "Optimizer", "SGD", "Adam", "Adadelta", "OPTIMIZERS", "WeightAverage",
           "update_parameters"]
