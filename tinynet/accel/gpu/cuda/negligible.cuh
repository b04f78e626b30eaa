
// The magnitude under which a value becomes 0: sqrt(finfo.tiny) of its type (float 2^-63,
// double 2^-511), as tinynet/negligible.py: negligible_below gives it.
template <typename T> __device__ T negligible_below();
template <> __device__ float negligible_below<float>() { return 1.0842021724855044e-19f; }
template <> __device__ double negligible_below<double>() { return 1.4916681462400413e-154; }

// x, or 0 where |x| < negligible_below (NaN and infinities stay)
template <typename T> __device__ T flushed(const T x) {
    return fabs(x) < negligible_below<T>() ? T(0) : x;
}
