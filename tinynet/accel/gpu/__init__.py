"""GPU twins: CuPy kernels, cuBLAS, CUDA graphs and streams (tinynet.accel.TWINS lists the
twins). Imported only where CuPy arrays are served."""
