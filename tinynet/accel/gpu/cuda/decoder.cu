
template <int SLICES>
__device__ void slice_of(const int length, int& begin, int& end) {
    const int chunk = (length + SLICES - 1) / SLICES;
    begin = min(length, threadIdx.y * chunk);
    end = min(length, begin + chunk);
}

template <typename T, int SLICES, int ROWS>
__global__ void tinynet_lstm_layer_step(
        const T* __restrict__ x, const int K, const T* __restrict__ W, const T* __restrict__ a_fixed,
        const T* __restrict__ c_prev, const T* __restrict__ mask, T* __restrict__ gates, T* __restrict__ c,
        T* __restrict__ tanh_c, T* __restrict__ h_out, const long long h_ld, T* __restrict__ up_out,
        const long long up_ld, const int N, const int H, const int has_fixed, const int has_mask,
        const int has_next, const int literal_eq13) {
    __shared__ T partial[SLICES][ROWS][4][32];
    const int k = blockIdx.x * 32 + threadIdx.x, n0 = blockIdx.y * ROWS;
    const long long H4 = 4LL * H;
    T acc[ROWS][4];
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
        for (int g = 0; g < 4; ++g) acc[r][g] = T(0);
    if (k < H) {
        const T* rows[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) rows[r] = x + (long long)min(n0 + r, N - 1) * K;
        int begin, end;
        slice_of<SLICES>(K, begin, end);
#pragma unroll 4
        for (int kk = begin; kk < end; ++kk) {
            const T* w = W + kk * H4 + k;
            const T w_i = w[0], w_f = w[H], w_g = w[2 * H], w_o = w[3 * H];
#pragma unroll
            for (int r = 0; r < ROWS; ++r) {
                const T xv = rows[r][kk];
                acc[r][0] += xv * w_i;
                acc[r][1] += xv * w_f;
                acc[r][2] += xv * w_g;
                acc[r][3] += xv * w_o;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
        for (int g = 0; g < 4; ++g) partial[threadIdx.y][r][g][threadIdx.x] = acc[r][g];
    __syncthreads();
    const int r = threadIdx.y, n = n0 + r;  // the first ROWS rows of threads finish one batch row each
    if (r >= ROWS || k >= H || n >= N) return;
    T a[4];
#pragma unroll
    for (int g = 0; g < 4; ++g) {
        a[g] = partial[0][r][g][threadIdx.x];
#pragma unroll
        for (int slice = 1; slice < SLICES; ++slice) a[g] += partial[slice][r][g][threadIdx.x];
    }
    const long long at_gates = n * H4 + k, at = (long long)n * H + k;
    if (has_fixed) {
#pragma unroll
        for (int g = 0; g < 4; ++g) a[g] += a_fixed[at_gates + g * H];
    }
    T c_new, tanh_c_new, h;
    lstm_cell_forward_at(a[0], a[1], a[2], a[3], c_prev[at], literal_eq13 != 0, c_new, tanh_c_new, h);
#pragma unroll
    for (int g = 0; g < 4; ++g) gates[at_gates + g * H] = a[g];
    c[at] = c_new;
    tanh_c[at] = tanh_c_new;
    if (has_next) h_out[n * h_ld + k] = h;
    up_out[n * up_ld + k] = has_mask ? h * mask[at] : h;
}

template <typename T, int SLICES, int ROWS>
__global__ void tinynet_lstm_layer_step_backward(
        const T* __restrict__ d_up, const long long up_ld, const T* __restrict__ mask,
        const T* __restrict__ dh_next, const long long dh_ld, const T* __restrict__ dc_next,
        const T* __restrict__ gates, const T* __restrict__ c_prev, const T* __restrict__ tanh_c,
        const T* __restrict__ W_input_T, const int J, T* __restrict__ da, T* __restrict__ dc_prev,
        T* __restrict__ d_input, const int N, const int H, const int has_mask, const int literal_eq13) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* partial = reinterpret_cast<T*>(shared_bytes);  // [SLICES][ROWS][32]
    T* da_rows = partial + SLICES * ROWS * 32;        // [ROWS][4H]
    const int n0 = blockIdx.x * ROWS, H4 = 4 * H;
    const int thread = threadIdx.y * 32 + threadIdx.x;
    for (int e = thread; e < ROWS * H; e += 32 * SLICES) {
        const int r = e / H, k = e % H, n = n0 + r;
        T da_i = T(0), da_f = T(0), da_g = T(0), da_o = T(0);
        if (n < N) {
            const long long at = (long long)n * H + k, at_gates = (long long)n * H4 + k;
            T dh = d_up[n * up_ld + k];
            if (has_mask) dh *= mask[at];
            dh += dh_next[n * dh_ld + k];
            T dc;
            lstm_cell_backward_at(dh, dc_next[at], gates[at_gates], gates[at_gates + H], gates[at_gates + 2 * H],
                                  gates[at_gates + 3 * H], c_prev[at], tanh_c[at], literal_eq13 != 0,
                                  da_i, da_f, da_g, da_o, dc);
            if (blockIdx.y == 0) {
                da[at_gates] = da_i;
                da[at_gates + H] = da_f;
                da[at_gates + 2 * H] = da_g;
                da[at_gates + 3 * H] = da_o;
                dc_prev[at] = dc;
            }
        }
        da_rows[r * H4 + k] = da_i;
        da_rows[r * H4 + H + k] = da_f;
        da_rows[r * H4 + 2 * H + k] = da_g;
        da_rows[r * H4 + 3 * H + k] = da_o;
    }
    __syncthreads();
    const int j = blockIdx.y * 32 + threadIdx.x;
    T acc[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[r] = T(0);
    if (j < J) {
        int begin, end;
        slice_of<SLICES>(H4, begin, end);
#pragma unroll 4
        for (int q = begin; q < end; ++q) {
            const T w = W_input_T[(long long)q * J + j];
#pragma unroll
            for (int r = 0; r < ROWS; ++r) acc[r] += da_rows[r * H4 + q] * w;
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r) partial[(threadIdx.y * ROWS + r) * 32 + threadIdx.x] = acc[r];
    __syncthreads();
    const int r = threadIdx.y, n = n0 + r;
    if (r >= ROWS || j >= J || n >= N) return;
    T sum = partial[r * 32 + threadIdx.x];
#pragma unroll
    for (int slice = 1; slice < SLICES; ++slice) sum += partial[(slice * ROWS + r) * 32 + threadIdx.x];
    d_input[(long long)n * J + j] = sum;
}

template <typename T, int SLICES>
__global__ void tinynet_output_row(const T* __restrict__ top, const T* __restrict__ W, const T* __restrict__ b,
                                   T* __restrict__ y, T* __restrict__ feedback, const long long feedback_ld,
                                   const int N, const int H, const int D, const int has_next) {
    __shared__ T partial[SLICES][32];
    const int n = blockIdx.x;
    int begin, end;
    slice_of<SLICES>(H, begin, end);
    for (int j0 = 0; j0 < D; j0 += 32) {
        const int j = j0 + threadIdx.x;
        T z = T(0);
        if (j < D)
            for (int k = begin; k < end; ++k) z += top[(long long)n * H + k] * W[(long long)k * D + j];
        partial[threadIdx.y][threadIdx.x] = z;
        __syncthreads();
        if (threadIdx.y == 0 && j < D) {
            for (int slice = 1; slice < SLICES; ++slice) z += partial[slice][threadIdx.x];
            const T out = sigmoid_by_tanh(z + b[j]);  // (14)
            y[(long long)n * D + j] = out;
            if (has_next) feedback[n * feedback_ld + j] = out;
        }
        __syncthreads();
    }
}

template <typename T>
__global__ void tinynet_output_row_backward(const T* __restrict__ dy, const long long dy_ld,
                                            const T* __restrict__ dy_fed_back, const long long fed_ld,
                                            const T* __restrict__ y, const T* __restrict__ W, T* __restrict__ dz_out,
                                            T* __restrict__ d_top, const int N, const int H, const int D) {
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= N * H) return;
    const int n = e / H, k = e % H;
    const T one = T(1);
    T acc = T(0);
    for (int j = 0; j < D; ++j) {
        const T y_j = y[(long long)n * D + j];
        const T dz = (dy[n * dy_ld + j] + dy_fed_back[n * fed_ld + j]) * (y_j * (one - y_j));
        acc += dz * W[(long long)k * D + j];
        if (j % H == k) dz_out[(long long)n * D + j] = dz;
    }
    d_top[e] = acc;
}
