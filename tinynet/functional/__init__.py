"""Pure maths: every `*_forward` returns `(out, cache)`, every `*_backward(dout, cache)`
returns `(dx, grads)` where `grads` is a dict keyed like the layer's `params`."""
