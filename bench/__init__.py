"""Reproducible speed and memory measurements of the training step, side by side with
PyTorch: `python -m bench.step` (one configuration) and `python -m bench.scaling`
(batch and hidden sizes). Figures and the commands that made them: bench/RESULTS.md."""
