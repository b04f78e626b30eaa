// One training step's parameter update in two kernels over every parameter tensor
// (tinynet/accel/gpu/update.py): eq. (17)'s gradient, clipping by global norm, Adam and the
// weight average. Read after negligible.cuh and update_chunks.cuh. The layout is compiled
// in: the header that tinynet/accel/gpu/sources.py: update_source writes before the files
// defines
//   T, CHUNK       the float type and the numbers of one chunk (one block per chunk)
//   CHUNKS         the number of chunks of all tensors together
//   WITH_AVERAGE   1 where the weight average is updated too, else 0
//   TENSORS(X)     X(i, first, end, size, weight) for each tensor i: it owns the chunks
//                  first .. end - 1 and holds `size` numbers; weight is 1 where eq. (17) applies
// Each kernel takes the tensors' pointers as arguments (SQUARES_PARAMS, APPLY_PARAMS), and
// each block finds the tensor of its chunk in a chain of comparisons with constants.

#define L2_OF(weight) ((weight) ? l2_twice : T(0))
#define SQUARES_PARAMS(i, first, end, size, weight) , const T* g##i, const T* p##i
#define SQUARES_CASE(i, first, end, size, weight) \
    if (chunk < end) \
        chunk_squares(g##i, p##i, size, (chunk - first) * CHUNK, L2_OF(weight), partials + chunk, shared); else
#if WITH_AVERAGE
#define APPLY_PARAMS(i, first, end, size, weight) , T* g##i, T* p##i, T* m##i, T* v##i, T* a##i
#define AVERAGE_OF(i) a##i
#define AVERAGE_RATE average_rate[0]
#else
#define APPLY_PARAMS(i, first, end, size, weight) , T* g##i, T* p##i, T* m##i, T* v##i
#define AVERAGE_OF(i) nullptr
#define AVERAGE_RATE T(0)
#endif
#define APPLY_CASE(i, first, end, size, weight) \
    if (chunk < end) \
        chunk_update(p##i, g##i, m##i, v##i, AVERAGE_OF(i), size, (chunk - first) * CHUNK, L2_OF(weight), s); else

// partials[chunk] <- the sum of squares of g + 2 lam w over the chunk
extern "C" __global__ void tinynet_update_squares(T* partials, const T l2_twice TENSORS(SQUARES_PARAMS)) {
    __shared__ T shared[32];
    const long long chunk = blockIdx.x;
    TENSORS(SQUARES_CASE) {}
}

// Every block adds up all the partial sums (in the same order, so every block gets the same
// norm), then updates its chunk. adam_scalars: Adam's (step, eps_hat); average_rate: the
// average's rate (unread without one).
extern "C" __global__ void tinynet_update_apply(const T* partials, const T l2_twice, const T max_norm,
        const T beta1, const T beta2, const T one_minus_beta1, const T one_minus_beta2, const T* adam_scalars,
        const T* average_rate TENSORS(APPLY_PARAMS)) {
    __shared__ T shared[32];
    T total = T(0);
    for (int j = threadIdx.x; j < CHUNKS; j += blockDim.x) total += partials[j];
    const T norm = sqrt(block_sum(total, shared));
    Step s;
    s.clip_scale = min(T(1), max_norm / (norm + T(1e-6)));
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.one_minus_beta1 = one_minus_beta1;
    s.one_minus_beta2 = one_minus_beta2;
    s.step = adam_scalars[0];
    s.eps_hat = adam_scalars[1];
    s.rate = AVERAGE_RATE;
    const long long chunk = blockIdx.x;
    TENSORS(APPLY_CASE) {}
}
