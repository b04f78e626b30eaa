"""Layer: an object owning `params` and `grads` (dicts with the same keys), with
`forward(x, train)` and `backward(dy) -> dx`; Sequential chains layers by name."""

from ..backend import to_device, xp_of


class Layer:
    """Base class. `weight_keys` names the params that the L2 penalty (eq. 17) applies to."""

    weight_keys = ()

    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, x, train=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def children(self):
        """Named sub-layers ({} for a leaf layer)."""
        return {}

    def named_params(self, prefix=""):
        """Flat {'path/key': array} over this layer and its children (same objects)."""
        return self._collect(prefix, lambda layer: layer.params)

    def named_grads(self, prefix=""):
        """Flat {'path/key': gradient}, keyed like named_params()."""
        return self._collect(prefix, lambda layer: layer.grads)

    def named_weights(self, prefix=""):
        """Flat {'path/key': array} of the params that take weight decay (no biases)."""
        return self._collect(prefix, lambda layer: {k: layer.params[k] for k in layer.weight_keys})

    def _collect(self, prefix, pick):
        out = {f"{prefix}{key}": value for key, value in pick(self).items()}
        for name, child in self.children().items():
            out.update(child._collect(f"{prefix}{name}/", pick))
        return out

    def load_params(self, flat):
        """Set every param from a flat dict as returned by named_params() (shapes must match)."""
        own = self.named_params()
        missing = sorted(set(own) - set(flat))
        if missing:
            raise KeyError(f"missing parameters: {', '.join(missing)}")
        for name, value in own.items():
            if tuple(flat[name].shape) != tuple(value.shape):
                raise ValueError(f"{name}: shape {tuple(flat[name].shape)} != {tuple(value.shape)}")
            value[...] = to_device(flat[name], xp_of(value)).astype(value.dtype, copy=False)

    def to(self, xp, dtype=None):
        """Move (and optionally cast) every parameter to array module `xp`; returns self."""
        for layer in self._leaves():
            for key, value in layer.params.items():
                moved = to_device(value, xp)
                layer.params[key] = moved if dtype is None else moved.astype(dtype)
            layer.grads = {}
        return self

    def _leaves(self):
        yield self
        for child in self.children().values():
            yield from child._leaves()

    def seed_dropout(self, seed):
        """Restart the dropout masks of every child from its own seed derived from `seed`
        (layers that draw masks override this), so a run resumed mid-way redraws them."""
        for index, child in enumerate(self.children().values()):
            child.seed_dropout((seed * 1_000_003 + index) % 2**31)

    def zero_grads(self):
        for layer in self._leaves():
            layer.grads = {}


class Sequential(Layer):
    """Layers applied in order; children are named in the given order."""

    def __init__(self, layers):
        super().__init__()
        self.layers = dict(layers)

    def children(self):
        return self.layers

    def forward(self, x, train=False):
        for layer in self.layers.values():
            x = layer.forward(x, train=train)
        return x

    def backward(self, dy):
        for layer in reversed(list(self.layers.values())):
            dy = layer.backward(dy)
        return dy
