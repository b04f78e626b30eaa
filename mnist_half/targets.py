"""The training targets: each clean training digit, its lower half blended with the mean
lower half of its nearest neighbours (docs/training.md, "Targets: the neighbour blend").

The RMSE of a redrawn lower half is lowest for the mean of the lower halves that digits
with that upper half have, E[lower | upper]; one digit's own lower half is a single, noisy
draw of it. On 3,750 training digits the network learns those draws by heart (the held-out
lower half gets worse after about 2,000 iterations), so the target of a digit's lower half
is (1 - blend) * its own + blend * the mean over the k training digits whose clean upper
halves are nearest to its own (itself excluded): a low-variance estimate of that mean.
The upper half, which the network only denoises, keeps its own pixels.
"""

import numpy as np

from .baselines import NEIGHBOUR_BATCH, batch_starts, check_neighbours, mean_of_nearest, upper_half_keys
from .corruption import lower_rows


def blended_targets(train_images, blend, k=25, batch_size=NEIGHBOUR_BATCH, progress=False):
    """(M, 28, 28) float32 targets of (M, 28, 28) clean training digits; blend 0 gives them back."""
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"the target blend must be in [0, 1], got {blend}")
    if blend == 0.0:
        return train_images
    check_neighbours(k, train_images[1:])  # a digit is never its own neighbour
    keys, key_norms = upper_half_keys(train_images)
    targets = train_images.astype(np.float32, copy=True)
    lower = lower_rows(train_images)
    for start in batch_starts(len(train_images), batch_size, progress, "neighbour targets"):
        digits = np.arange(start, min(start + batch_size, len(train_images)))
        neighbours = mean_of_nearest(keys[digits], keys, key_norms, train_images, k, exclude=digits)
        targets[digits, lower] = (1 - blend) * train_images[digits, lower] + blend * neighbours[:, lower]
    return targets
