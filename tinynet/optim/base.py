"""The optimizer contract: `step(params, grads)` updates each array of `params` in place.

A step is two halves: `begin_step()` counts it and computes its scalars (the learning
rate, Adam's bias corrections) on the host; `apply(params, grads)` does the array work.
`step` runs both. A training step captured in a CUDA graph (tinynet.accel.gpu.graph)
runs `begin_step` before each replay and captures only `apply`: with
`keep_scalars_on_device` the scalars live in one device array that `begin_step` overwrites
in place, so every replay reads the current values (a Python float would be frozen into
the graph). The weight average (tinynet.optim.WeightAverage) has scalars of its own and
shares that mechanism, `StepScalars`.
"""

from ..backend import to_device, to_numpy, xp_of


class StepScalars:
    """Counts steps (`self.t`) and holds the current step's scalars in `self.scalars`:
    floats, or 0-d views of one device array (`scalar_buffer`) after keep_scalars_on_device.
    Subclasses name their scalars in `scalar_names` and compute them in `step_scalars`."""

    scalar_names = ()

    def __init__(self):
        self.t = 0
        self.scalars = {}
        self.scalar_buffer = None

    def begin_step(self):
        """Count the step and set its scalars (written to the device buffer when there is one)."""
        self.t += 1
        values = self.step_scalars()
        if self.scalar_buffer is None:
            self.scalars = values
        else:
            buffer = self.scalar_buffer
            buffer[...] = xp_of(buffer).asarray([values[name] for name in self.scalar_names], dtype=buffer.dtype)

    def keep_scalars_on_device(self, xp, dtype):
        """From now on keep the step's scalars in one array of module `xp` (CuPy: on the
        device); `self.scalars` then holds 0-d views of it that never move."""
        self.scalar_buffer = xp.zeros(len(self.scalar_names), dtype=dtype)
        self.scalars = {name: self.scalar_buffer[i:i + 1].reshape(()) for i, name in enumerate(self.scalar_names)}

    def step_scalars(self):
        """{name: float} of the step `self.t`, one per name of `scalar_names`."""
        raise NotImplementedError


class Optimizer(StepScalars):
    """Per-parameter state lives in `self.state[name][slot]` (arrays like the parameter);
    `self.scalars[name]` holds the current step's scalars (floats, or 0-d device arrays)."""

    slots = ()
    scalar_names = ("lr",)

    def __init__(self, lr):
        super().__init__()
        self.lr = lr
        self.state = {}

    def step(self, params, grads):
        """One update of every parameter in `params` ({name: array}) from `grads` (same keys)."""
        self.begin_step()
        self.apply(params, grads)

    def step_scalars(self):
        return {"lr": self.lr}

    def apply(self, params, grads):
        """The array half of a step: update every parameter with the current scalars."""
        if set(params) != set(grads):
            raise KeyError(f"params and grads differ: {sorted(set(params) ^ set(grads))}")
        for name, param in params.items():
            self.update(param, grads[name], self.state_of(name, param))

    def state_of(self, name, param):
        """The state slots of parameter `name`, made (zeros like `param`) on first use."""
        state = self.state.get(name)
        if state is None:
            state = self.state[name] = {slot: xp_of(param).zeros_like(param) for slot in self.slots}
        return state

    def update(self, param, grad, state):
        raise NotImplementedError

    def state_dict(self):
        """Flat {'t': t, 'name/slot': numpy array} for a checkpoint."""
        flat = {"t": self.t}
        for name, state in self.state.items():
            for slot, value in state.items():
                flat[f"{name}/{slot}"] = to_numpy(value)
        return flat

    def load_state_dict(self, flat, xp):
        """Restore what state_dict() returned, moving arrays to module `xp`."""
        self.t = int(flat["t"])
        self.state = {}
        for key, value in flat.items():
            if key == "t":
                continue
            name, slot = key.rsplit("/", 1)
            if slot not in self.slots:
                raise KeyError(f"unknown optimizer state {key!r} for {type(self).__name__}")
            self.state.setdefault(name, {})[slot] = to_device(value, xp)

