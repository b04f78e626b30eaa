"""GPU twins: CuPy kernels, cuBLAS, CUDA graphs and streams (tinynet.accel.TWINS lists the
twins). Imported only where CuPy arrays are served; the CUDA C lives in cuda/ as package data."""

from importlib import resources


def cuda_source(name):
    """The CUDA C of tinynet/accel/gpu/cuda/<name>."""
    return resources.files(__name__).joinpath("cuda", name).read_text()
