// The bodies of the cupy.ElementwiseKernels of tinynet/accel/gpu/fused.py, one function per
// kernel: a kernel's operation is one call of its function, with CuPy's loop index `i` and
// the kernel's arguments in their declared order (tinynet/accel/gpu/sources.py declares
// them). A non-raw argument arrives as its element at this position (`T x`: x[i]; inputs by
// const reference, as CuPy binds them), a raw one as the whole array, indexed by hand. Read
// after cell.cuh. Constants are cast to T, so that float32 stays float32.

// `i` runs over the (N, H) cell positions: row n = i / H, unit k = i % H. The gates of
// position (n, k) sit at n 4H + k + {0, 1, 2, 3} H of the (N, 4H) gate array (blocks i, f, g, o).
__device__ __forceinline__ ptrdiff_t gate_offset(const ptrdiff_t i, const long long H) {
    return (i / H) * 4 * H + i % H;
}

// Eqs. (8)-(13) at one position: the four pre-activations in `gates` become the activated
// gates (in place); h, c and tanh(c) of the position are written.
template <typename T, typename Gates>
__device__ __forceinline__ void lstm_cell_forward_elementwise(const ptrdiff_t i, const T& c_prev, const long long& H,
                                                              const bool literal_eq13, Gates& gates, T& h, T& c,
                                                              T& tanh_c) {
    const ptrdiff_t at = gate_offset(i, H);
    const ptrdiff_t at_i = at, at_f = at + H, at_g = at + 2 * H, at_o = at + 3 * H;
    T in_gate = gates[at_i], forget_gate = gates[at_f], new_state = gates[at_g], out_gate = gates[at_o];
    lstm_cell_forward_at(in_gate, forget_gate, new_state, out_gate, c_prev, literal_eq13, c, tanh_c, h);
    gates[at_i] = in_gate;
    gates[at_f] = forget_gate;
    gates[at_g] = new_state;
    gates[at_o] = out_gate;
}

// The backward of eqs. (8)-(13) at one position: the four pre-activation gradients into
// `da` (N, 4H), the gradient w.r.t. c_prev into dc_prev.
template <typename T, typename Gates, typename GateGradients>
__device__ __forceinline__ void lstm_cell_backward_elementwise(const ptrdiff_t i, const T& dh, const T& dc,
                                                               const Gates& gates, const T& c_prev, const T& tanh_c,
                                                               const long long& H, const bool literal_eq13,
                                                               GateGradients& da, T& dc_prev) {
    const ptrdiff_t at = gate_offset(i, H);
    const ptrdiff_t at_i = at, at_f = at + H, at_g = at + 2 * H, at_o = at + 3 * H;
    lstm_cell_backward_at(dh, dc, gates[at_i], gates[at_f], gates[at_g], gates[at_o], c_prev, tanh_c,
                          literal_eq13, da[at_i], da[at_f], da[at_g], da[at_o], dc_prev);
}

// Adam (tinynet.optim.adam) at one element: the running moments, then the step with
// step = lr sqrt(1 - beta2^t) / (1 - beta1^t) and eps_hat = eps sqrt(1 - beta2^t).
template <typename T>
__device__ __forceinline__ void adam_update_elementwise(const T& grad, const T& beta1, const T& beta2,
                                                        const T& one_minus_beta1, const T& one_minus_beta2,
                                                        const T& step, const T& eps_hat, T& param, T& m, T& v) {
    m = m * beta1 + one_minus_beta1 * grad;
    v = v * beta2 + one_minus_beta2 * (grad * grad);
    param -= step * m / (sqrt(v) + eps_hat);
}

// Clipping by global norm (tinynet.optim.clip): g <- g min(1, max_norm / (|g| + 1e-6)).
template <typename T>
__device__ __forceinline__ void clip_elementwise(const T& norm, const T& max_norm, T& grad) {
    grad *= min((T)1, max_norm / (norm + (T)1e-6));
}

// y += scale x (eq. 17's gradient 2 lam w added to a weight's gradient).
template <typename T>
__device__ __forceinline__ void add_scaled_elementwise(const T& x, const T& scale, T& y) {
    y += scale * x;
}

__device__ unsigned int mix32(unsigned int x) {  // 'lowbias32'
    x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
    return x;
}

// Dropout's uniform of element i in draw `draw` after a reseed with `seed` (the twin of
// tinynet.functional.dropout.counter_uniform): a hash of (seed, draw, i), its top 24 bits
// scaled to [0, 1).
__device__ __forceinline__ float counter_uniform_elementwise(const ptrdiff_t i, const unsigned int seed,
                                                             const unsigned int draw) {
    const unsigned int key = mix32(seed + 0x9E3779B9u * (draw + 1u));
    const unsigned int bits = mix32(mix32((unsigned int)i ^ key) + key);
    return (float)(bits >> 8) * (1.0f / 16777216.0f);
}
