
// The sum of `value` over the block, returned to every thread; `shared` holds 32 T.
__device__ T block_sum(T value, T* shared) {
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffff, value, offset);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) shared[warp] = value;
    __syncthreads();
    if (warp == 0) {
        value = lane < blockDim.x / 32 ? shared[lane] : T(0);
        for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffff, value, offset);
        if (lane == 0) shared[0] = value;
    }
    __syncthreads();
    value = shared[0];
    __syncthreads();
    return value;
}

// partials[chunk] <- sum over the chunk of (g + l2_twice w)^2
__device__ void chunk_squares(const T* grad, const T* param, long long size, long long begin, T l2_twice,
                              T* partial, T* shared) {
    const long long end = min(size, begin + CHUNK);
    T sum = T(0);
    for (long long j = begin + threadIdx.x; j < end; j += blockDim.x) {
        const T g = grad[j] + l2_twice * param[j];
        sum += g * g;
    }
    sum = block_sum(sum, shared);
    if (threadIdx.x == 0) *partial = sum;
}

struct Step {
    T clip_scale, beta1, beta2, one_minus_beta1, one_minus_beta2, step, eps_hat, rate;
};

// g <- (g + l2_twice w) clip_scale, then Adam's m, v and w, then the average a (if any);
// then each of m, v, w and a flushed (negligible.cuh), as tinynet.optim.update_parameters does
// after them all
__device__ void chunk_update(T* param, T* grad, T* m, T* v, T* average, long long size, long long begin,
                             T l2_twice, const Step& s) {
    const long long end = min(size, begin + CHUNK);
    for (long long j = begin + threadIdx.x; j < end; j += blockDim.x) {
        T g = grad[j] + l2_twice * param[j];
        g *= s.clip_scale;
        grad[j] = g;
        const T m_j = m[j] * s.beta1 + s.one_minus_beta1 * g;
        const T v_j = v[j] * s.beta2 + s.one_minus_beta2 * (g * g);
        m[j] = flushed(m_j);
        v[j] = flushed(v_j);
        const T w = param[j] - s.step * m_j / (sqrt(v_j) + s.eps_hat);
        param[j] = flushed(w);
        if (average != nullptr) average[j] = flushed(average[j] + (w - average[j]) * s.rate);
    }
}
