"""CPU twins: Numba kernels for NumPy arrays (tinynet.accel.TWINS lists them)."""
