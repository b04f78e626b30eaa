
// rows_back = h + pad - i must be o * stride for an output o in [0, count): that o, or -1
__device__ int output_at(int rows_back, int stride, int count) {
    if (rows_back < 0) return -1;
    const int o = stride == 1 ? rows_back : rows_back / stride;
    return (stride == 1 || o * stride == rows_back) && o < count ? o : -1;
}

// cols (C kh kw, N Ho Wo): block (n, row = (c, i, j)) fills row's Ho x Wo columns of image n
template <typename T>
__global__ void tinynet_im2col(const T* x, T* cols, int N, int C, int H, int W, int kh, int kw, int stride,
                               int pad, int Ho, int Wo) {
    const int n = blockIdx.x, row = blockIdx.y;
    const int c = row / (kh * kw), i = (row / kw) % kh, j = row % kw;
    const T* plane = x + ((long long)n * C + c) * H * W;
    T* out = cols + (long long)row * N * Ho * Wo + (long long)n * Ho * Wo;
    for (int ho = threadIdx.y; ho < Ho; ho += blockDim.y) {
        const int h = ho * stride + i - pad;
        for (int wo = threadIdx.x; wo < Wo; wo += blockDim.x) {
            const int w = wo * stride + j - pad;
            out[ho * Wo + wo] = h >= 0 && h < H && w >= 0 && w < W ? plane[h * W + w] : T(0);
        }
    }
}

// dx (N, C, H, W): block (n, c) sums, for each pixel, the columns that read it
template <typename T>
__global__ void tinynet_col2im(const T* cols, T* dx, int N, int C, int H, int W, int kh, int kw, int stride,
                               int pad, int Ho, int Wo) {
    const int n = blockIdx.x, c = blockIdx.y;
    const long long pixels = (long long)N * Ho * Wo;
    const T* image = cols + (long long)c * kh * kw * pixels + (long long)n * Ho * Wo;
    T* plane = dx + ((long long)n * C + c) * H * W;
    for (int h = threadIdx.y; h < H; h += blockDim.y) {
        for (int w = threadIdx.x; w < W; w += blockDim.x) {
            T sum = T(0);
            for (int i = 0; i < kh; ++i) {
                const int ho = output_at(h + pad - i, stride, Ho);
                if (ho < 0) continue;
                for (int j = 0; j < kw; ++j) {
                    const int wo = output_at(w + pad - j, stride, Wo);
                    if (wo >= 0) sum += image[(i * kw + j) * pixels + ho * Wo + wo];
                }
            }
            plane[h * W + w] = sum;
        }
    }
}

// block (n, c): each output of the plane takes its window's maximum (strict: the first wins)
template <typename T>
__global__ void tinynet_maxpool(const T* x, T* y, short* winner, int C, int H, int W, int size, int stride,
                                int Ho, int Wo) {
    const long long plane = (long long)blockIdx.x * C + blockIdx.y;
    for (int ho = threadIdx.y; ho < Ho; ho += blockDim.y) {
        for (int wo = threadIdx.x; wo < Wo; wo += blockDim.x) {
            const T* window = x + (plane * H + ho * stride) * W + wo * stride;
            T best = window[0];
            short best_at = 0;
            for (int p = 0; p < size; ++p)
                for (int q = 0; q < size; ++q)
                    if (window[p * W + q] > best) {
                        best = window[p * W + q];
                        best_at = (short)(p * size + q);
                    }
            y[(plane * Ho + ho) * Wo + wo] = best;
            winner[(plane * Ho + ho) * Wo + wo] = best_at;
        }
    }
}

// block (n, c): each input pixel sums the gradients of the windows whose maximum it was
template <typename T>
__global__ void tinynet_maxpool_backward(const T* dy, const short* winner, T* dx, int C, int H, int W, int size,
                                         int stride, int Ho, int Wo) {
    const long long plane = (long long)blockIdx.x * C + blockIdx.y;
    for (int h = threadIdx.y; h < H; h += blockDim.y) {
        for (int w = threadIdx.x; w < W; w += blockDim.x) {
            T sum = T(0);
            for (int p = 0; p < size; ++p) {
                const int ho = output_at(h - p, stride, Ho);
                if (ho < 0) continue;
                for (int q = 0; q < size; ++q) {
                    const int wo = output_at(w - q, stride, Wo);
                    const long long at = (plane * Ho + ho) * Wo + wo;
                    if (wo >= 0 && winner[at] == p * size + q) sum += dy[at];
                }
            }
            dx[(plane * H + h) * W + w] = sum;
        }
    }
}
