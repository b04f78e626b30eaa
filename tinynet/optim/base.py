"""The optimizer contract: `step(params, grads)` updates each array of `params` in place."""

from ..backend import to_device, to_numpy, xp_of


class Optimizer:
    """Per-parameter state lives in `self.state[name][slot]` (arrays like the parameter)."""

    slots = ()

    def __init__(self, lr):
        self.lr = lr
        self.t = 0
        self.state = {}

    def step(self, params, grads):
        """One update of every parameter in `params` ({name: array}) from `grads` (same keys)."""
        if set(params) != set(grads):
            raise KeyError(f"params and grads differ: {sorted(set(params) ^ set(grads))}")
        self.t += 1
        for name, param in params.items():
            state = self.state.get(name)
            if state is None:
                xp = xp_of(param)
                state = self.state[name] = {slot: xp.zeros_like(param) for slot in self.slots}
            self.update(param, grads[name], state)

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
