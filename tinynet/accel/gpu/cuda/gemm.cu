
template <typename T, int TILE>
__global__ void tinynet_gemm(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C,
                             const int M, const int N, const int K, const int k_chunk,
                             const long long sam, const long long sak,
                             const long long sbk, const long long sbn) {
    constexpr int TK = 16, R = TILE / 16;
    __shared__ T As[TK][TILE + 1];
    __shared__ T Bs[TK][TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int m0 = blockIdx.y * TILE, n0 = blockIdx.x * TILE;
    const int k_begin = blockIdx.z * k_chunk;
    const int k_end = min(K, k_begin + k_chunk);
    T acc[R][R];
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
        for (int j = 0; j < R; ++j) acc[i][j] = T(0);

    for (int k0 = k_begin; k0 < k_end; k0 += TK) {
        for (int e = tid; e < TILE * TK; e += 256) {
            int mm, kk;
            if (sak == 1) { mm = e / TK; kk = e % TK; } else { kk = e / TILE; mm = e % TILE; }
            const int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < k_end) ? A[m * sam + k * sak] : T(0);
        }
        for (int e = tid; e < TILE * TK; e += 256) {
            int nn, kk;
            if (sbn == 1) { kk = e / TILE; nn = e % TILE; } else { nn = e / TK; kk = e % TK; }
            const int n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < N && k < k_end) ? B[k * sbk + n * sbn] : T(0);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TK; ++kk) {
            T a[R], b[R];
#pragma unroll
            for (int i = 0; i < R; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < R; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < R; ++i)
#pragma unroll
                for (int j = 0; j < R; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    T* Cz = C + (size_t)blockIdx.z * M * N;
#pragma unroll
    for (int i = 0; i < R; ++i) {
        const int m = m0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < R; ++j) {
            const int n = n0 + tx + 16 * j;
            if (m < M && n < N) Cz[(size_t)m * N + n] = acc[i][j];
        }
    }
}
