"""Two simple completions that the network must beat: nearest neighbours and PCA.

Both see what the network sees, a corrupted digit whose lower half is blank (Figure 5),
and both start from its observed upper half with the noise filtered out by a 3x3 median
(the classic filter for salt-and-pepper noise; it also tames Gaussian noise). Then:
  - nearest-neighbour completion: the mean of the k training digits whose clean upper
    halves are closest in L2 to that filtered half;
  - PCA completion: the principal components of the clean training digits, with
    coefficients fitted to the filtered upper-half pixels only by least squares and a
    ridge weighted by each component's variance.
Both return the full 28x28 image (upper half included). Everything is vectorised NumPy,
in batches of test digits so that memory stays bounded on full MNIST.
"""

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .corruption import upper_rows

MEDIAN_SIZE = 3
NEIGHBOUR_BATCH = 500  # queries per distance product: 500 x 52,500 float32 (full MNIST) is 105 MB


def upper_half(images):
    """The observed rows of `images` (..., H, W), the ones blank_lower_half keeps."""
    return images[..., upper_rows(images), :]


def median_filter(images, size=MEDIAN_SIZE):
    """Each pixel of `images` (N, H, W) replaced by the median of its size x size window.

    The border repeats the edge pixels, so a window never reaches outside `images`
    (filtering only the upper half keeps the blank lower half from leaking in).
    """
    r = size // 2
    padded = np.pad(images, ((0, 0), (r, r), (r, r)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
    return np.median(windows.reshape(*images.shape, size * size), axis=-1).astype(images.dtype, copy=False)


def denoised_upper_half(corrupted):
    """(N, H, W) corrupted digits -> (N, H/2, W): their upper halves through the median filter."""
    return median_filter(upper_half(corrupted))


def batch_starts(n, batch_size, progress, desc):
    """range(0, n, batch_size), with a progress bar named `desc` when `progress`."""
    starts = range(0, n, batch_size)
    return tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False, dynamic_ncols=True)


def upper_half_keys(train_images):
    """(keys, squared norms): the flattened clean upper halves of (M, 28, 28) digits, float32."""
    keys = upper_half(train_images).reshape(len(train_images), -1).astype(np.float32)
    return keys, np.einsum("md,md->m", keys, keys)


def mean_of_nearest(queries, keys, key_norms, train_images, k, exclude=None):
    """Per query (B, D) upper half, the mean image of the k training digits whose keys are
    nearest in L2. Squared distances come from |q|^2 - 2 q.t + |t|^2, one matrix product
    (|q|^2 is the same for every candidate of a query, so it is left out). exclude: per
    query the index of a training digit that may not count (the query's own digit), or None."""
    distances = key_norms - 2 * (queries.astype(np.float32) @ keys.T)
    if exclude is not None:
        distances[np.arange(len(queries)), exclude] = np.inf
    nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
    return train_images[nearest].mean(axis=1)


def check_neighbours(k, train_images):
    """A ValueError unless 1 <= k <= the number of training digits."""
    if not 0 < k <= len(train_images):
        raise ValueError(f"k={k} needs 1..{len(train_images)} training digits")


def nearest_neighbour_completion(corrupted, train_images, k=10, batch_size=NEIGHBOUR_BATCH, progress=False):
    """The mean of the k training digits nearest to each corrupted digit's denoised upper half.

    corrupted: (N, 28, 28); train_images: (M, 28, 28) clean, M >= k. Returns (N, 28, 28).
    A batch costs batch_size x M floats (500 x 52,500 float32: 105 MB).
    """
    check_neighbours(k, train_images)
    keys, key_norms = upper_half_keys(train_images)
    out = np.empty(corrupted.shape, dtype=np.float32)
    for start in batch_starts(len(corrupted), batch_size, progress, "nearest neighbours"):
        queries = denoised_upper_half(corrupted[start:start + batch_size]).reshape(-1, keys.shape[1])
        out[start:start + len(queries)] = mean_of_nearest(queries, keys, key_norms, train_images, k)
    return out


@dataclass(frozen=True, eq=False)
class PCA:
    """mean: (D,) image mean; components: (K, D) orthonormal rows; variances: (K,) of each."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray


def fit_pca(train_images, n_components=50, batch_size=10_000):
    """The first `n_components` principal components of (M, 28, 28) clean digits.

    The eigenvectors of the D x D pixel covariance, accumulated in float64 over batches:
    the same components as an SVD of the centred data, without its M x D copies
    (full MNIST: 52,500 x 784).
    """
    x = train_images.reshape(len(train_images), -1)
    M, D = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((D, D))
    for start in range(0, M, batch_size):
        centred = x[start:start + batch_size] - mean
        covariance += centred.T @ centred
    variances, vectors = np.linalg.eigh(covariance / max(1, M - 1))
    top = np.argsort(variances)[::-1][:n_components]
    return PCA(mean.astype(np.float32), vectors[:, top].T.astype(np.float32), variances[top])


def complete_from_upper(upper, pca, noise_variance=0.05):
    """Full images from the PCA coefficients that best explain their (denoised) upper halves.

    upper: (N, H/2, W) -> (N, H, W), clipped to [0, 1]. With U the components restricted to
    the upper-half pixels and o the observed pixels minus their mean,
    c = argmin |U^T c - o|^2 + s2 sum_k c_k^2 / var_k = (U U^T + s2 diag(1 / var))^-1 U o:
    a ridge that pulls weakly supported coefficients to 0, the more so the less variance
    their component carries (the MAP estimate when c_k ~ N(0, var_k) and each observed pixel
    has noise variance s2 = `noise_variance`, what the components and the filter miss).
    """
    N, half, W = upper.shape
    D_upper = half * W  # the upper rows come first in a flattened (row-major) image
    U = pca.components[:, :D_upper].astype(np.float64)
    P = np.linalg.solve(U @ U.T + noise_variance * np.diag(1 / pca.variances), U).astype(upper.dtype)
    coefficients = (upper.reshape(N, D_upper) - pca.mean[:D_upper]) @ P.T
    images = coefficients @ pca.components + pca.mean
    return np.clip(images, 0, 1).reshape(N, 2 * half, W)


def pca_completion(corrupted, pca, noise_variance=0.05, batch_size=2000, progress=False):
    """complete_from_upper on the median-filtered upper halves of (N, 28, 28) corrupted digits.

    The default noise variance suits 50 components (chosen on the embedded split: the
    lower-half RMSE is flat between 0.03 and 0.1).
    """
    out = np.empty(corrupted.shape, dtype=np.float32)
    for start in batch_starts(len(corrupted), batch_size, progress, "PCA"):
        batch = corrupted[start:start + batch_size]
        out[start:start + len(batch)] = complete_from_upper(denoised_upper_half(batch), pca, noise_variance)
    return out
