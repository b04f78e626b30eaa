"""The float32 products of the layers on CPUs with AVX-512, on every core: the matrix
product, and the convolutions computed straight from the padded images (no im2col columns).
Products are three quarters of a training step on the CPU (bench/RESULTS.md).

NumPy's `a @ b` (OpenBLAS) picks its kernels from the CPU, or from OPENBLAS_CORETYPE where
the machine sets it; held to the AVX2 ("Haswell") kernels it multiplies at half of what an
AVX-512 core can. Here each product is cut into register tiles written in LLVM vector
instructions (Numba intrinsics), 16 floats to a vector:

    tile_nn (MR x NR of C = A @ B): for each k, NR / 16 vectors of row k of B, and each of
        the MR elements A[i, k] broadcast to a vector; MR * NR / 16 fused multiply-adds.
        B needs contiguous rows (unit stride along N); A may have any strides.
    tile_nt (NT_ROWS x NT_COLS of C = A @ Bt^T): C[i, j] = row i of A . row j of Bt, each a
        vector over 16 k at a time, summed across the vector at the end. For B = (a
        C-contiguous matrix).T, whose columns are contiguous but not its rows.
    tile_conv (MR_CONV output pixels of an image row x NR channels): tile_nn where A is the
        im2col matrix that is never built: A[pixel, tap] is read from the padded image at
        the pixel's offset plus the window tap's offset (a table); writes NCHW planes.
    tile_conv_weights (MR_W taps x NR_W channels of a weight gradient): the same reading,
        summed over the pixels of an image.

Tiles that would cross the edge of C are moved back to end at the edge (overlapping the
tile before; the overlap is written last, with the same product) and products narrower than
a tile are padded, so the tiles read and write only inside the arrays. K is taken in blocks
that keep a tile's slices of A and B in cache. Output panels (of C, or rows of an image) are
shared out over Numba's threads (prange); each output is always summed in the same order,
whatever the thread count, so results repeat exactly.

Reference twins: the plain `a @ b`, and the im2col / col2im products of
tinynet.functional.conv (tests/tinynet/test_gemm.py, exact where float32 sums are). The kernels
compile for any CPU (LLVM splits the 16-float vectors where they are wider than the
hardware's), but serve the layers only where the CPU has AVX-512 and they beat NumPy's
BLAS there (`USEFUL`, decided once per machine by tinynet.accel.cpu.calibration).
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import calibration

HAS_AVX512 = bool(llvm.get_host_cpu_features().get("avx512f", False))

LANES = 16              # floats in one 512-bit vector
MR, NR = 10, 32         # tile_nn: 10 rows x 2 vectors = 20 of the 32 vector registers
MR_CONV = 14            # tile_conv: 14 output pixels (a row of Table 1's 14 x 14 maps) x 2 vectors;
                        # tile_conv_narrow 7 (the 7 x 7 maps)
MR_W, NR_W = 5, 64      # tile_conv_weights: 5 window taps x 4 vectors (64 channels)
NT_ROWS, NT_COLS = 4, 6  # tile_nt: 4 x 6 vector sums
KC_NN = 256             # k per block: a 256 x 32 slice of B stays in the 48 KiB L1 cache
KC_NT = 2048            # k per block of tile_nt, a multiple of LANES: 10 rows of 8 KiB in L2

_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_VECTOR = ir.VectorType(_F32, LANES)


def _const(value):
    return ir.Constant(_I64, value)


def _data_pointer(context, builder, array_type, array, offset):
    """A float* to element `offset` (counted in floats from the array's first element)."""
    return builder.gep(context.make_array(array_type)(context, builder, array).data, [offset])


def _load_vector(builder, pointer):
    return builder.load(builder.bitcast(pointer, _VECTOR.as_pointer()), align=4)


def _store_tile(context, builder, c_type, c, c_start, c_row_step, sums, per_row, accumulate):
    """Row i of a tile, sums[i * per_row:(i + 1) * per_row], to c from c_start + i * c_row_step
    (+ what is there when accumulate)."""
    for i in range(len(sums) // per_row):
        c_row = _data_pointer(context, builder, c_type, c, builder.add(c_start, builder.mul(_const(i), c_row_step)))
        for v, value in enumerate(sums[i * per_row:(i + 1) * per_row]):
            target = builder.bitcast(builder.gep(c_row, [_const(LANES * v)]), _VECTOR.as_pointer())
            total = builder.fadd(builder.load(target, align=4), value)
            builder.store(builder.select(accumulate, total, value), target, align=4)


def _fma(builder):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                          "llvm.fma.v16f32")


def _counted_loop(builder, count, accumulators):
    """Open `for k in range(count)` carrying `accumulators` vectors, all 0 at k = 0.

    Returns (k, the accumulators' values in the body, close(new_values) -> their values after
    the loop, 0 when count <= 0).
    """
    before = builder.block
    body = builder.function.append_basic_block("tile_k")
    after = builder.function.append_basic_block("tile_done")
    zero = ir.Constant(_VECTOR, [0.0] * LANES)
    builder.cbranch(builder.icmp_signed(">", count, _const(0)), body, after)
    builder.position_at_end(body)
    k = builder.phi(_I64)
    k.add_incoming(_const(0), before)
    carried = [builder.phi(_VECTOR) for _ in range(accumulators)]
    for value in carried:
        value.add_incoming(zero, before)

    def close(new_values):
        end = builder.block
        k_next = builder.add(k, _const(1))
        k.add_incoming(k_next, end)
        for value, new in zip(carried, new_values):
            value.add_incoming(new, end)
        builder.cbranch(builder.icmp_signed("<", k_next, count), body, after)
        builder.position_at_end(after)
        final = []
        for new in new_values:
            value = builder.phi(_VECTOR)
            value.add_incoming(zero, before)
            value.add_incoming(new, end)
            final.append(value)
        return final

    return k, carried, close


def _broadcast_products(builder, a_rows, a_column, b_first, b_row_step, kc, per_row=NR // LANES):
    """The sums of tile_nn and tile_conv: for each k < kc, NR / 16 vectors of row k of B times
    A[i, k] (at a_rows[i] + a_column(k)) broadcast, for every i. Returns the len(a_rows) * NR / 16
    vectors, row by row."""
    fma = _fma(builder)
    k, acc, close = _counted_loop(builder, kc, len(a_rows) * per_row)
    b_row = builder.gep(b_first, [builder.mul(k, b_row_step)])
    b_vectors = [_load_vector(builder, builder.gep(b_row, [_const(LANES * v)])) for v in range(per_row)]
    column = a_column(k)
    new = []
    for i, a_row in enumerate(a_rows):
        a_ik = builder.load(builder.gep(a_row, [column]))
        broadcast = builder.shuffle_vector(
            builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), a_ik, ir.Constant(ir.IntType(32), 0)),
            ir.Constant(_VECTOR, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
        new += [builder.call(fma, [broadcast, b_vector, acc[i * per_row + v]]) for v, b_vector in enumerate(b_vectors)]
    return close(new)


@intrinsic
def tile_nn(typingctx, a, a_start, a_row_step, a_col_step, b, b_start, b_row_step, c, c_start, c_row_step,
            kc, accumulate):
    """C[i, j] (+)= sum_{k < kc} A[i, k] B[k, j] for an MR x NR tile; element (i, k) of A at
    a_start + i * a_row_step + k * a_col_step (in floats), B[k, j] at b_start + k * b_row_step + j,
    C[i, j] at c_start + i * c_row_step + j. kc >= 1."""
    signature = types.void(a, types.int64, types.int64, types.int64, b, types.int64, types.int64,
                           c, types.int64, types.int64, types.int64, types.boolean)

    def codegen(context, builder, sig, args):
        a, a_start, a_row_step, a_col_step, b, b_start, b_row_step, c, c_start, c_row_step, kc, accumulate = args
        a_type, b_type, c_type = sig.args[0], sig.args[4], sig.args[7]
        a_rows = [_data_pointer(context, builder, a_type, a, builder.add(a_start, builder.mul(_const(i), a_row_step)))
                  for i in range(MR)]
        sums = _broadcast_products(builder, a_rows, lambda k: builder.mul(k, a_col_step),
                                   _data_pointer(context, builder, b_type, b, b_start), b_row_step, kc)
        _store_tile(context, builder, c_type, c, c_start, c_row_step, sums, NR // LANES, accumulate)
        return context.get_dummy_value()

    return signature, codegen


def _tile_conv(pixels_per_tile, stride):
    """tile_conv for `pixels_per_tile` output pixels of one image row (x 2 vectors of channels) at
    `stride`: both compile-time constants, so that the pixels' addresses are one register plus
    constant displacements (with a stride in a register they took 14 registers and spilled)."""

    @intrinsic
    def tile_conv(typingctx, x, x_start, offsets, b, b_start, b_row_step, out, out_start, out_step,
                  out_channel_step, kc):
        """out[out_start + i * out_step + j * out_channel_step] = sum_{k < kc} x[x_start + i * stride +
        offsets[k]] B[k, j] for i < pixels_per_tile output pixels of one image row and j < NR output
        channels (B[k, j] at b_start + k * b_row_step + j): a convolution read straight from the padded
        image, its window offsets in `offsets` (int64), written to channel planes (NCHW). kc >= 1."""
        signature = types.void(x, types.int64, offsets, b, types.int64, types.int64, out, types.int64,
                               types.int64, types.int64, types.int64)

        def codegen(context, builder, sig, args):
            x, x_start, offsets, b, b_start, b_row_step, out, out_start, out_step, out_channel_step, kc = args
            x_type, offsets_type, b_type, out_type = sig.args[0], sig.args[2], sig.args[3], sig.args[6]
            pixels = [_data_pointer(context, builder, x_type, x, builder.add(x_start, _const(i * stride)))
                      for i in range(pixels_per_tile)]
            offset_of = context.make_array(offsets_type)(context, builder, offsets).data
            sums = _broadcast_products(builder, pixels, lambda k: builder.load(builder.gep(offset_of, [k])),
                                       _data_pointer(context, builder, b_type, b, b_start), b_row_step, kc)
            first = _data_pointer(context, builder, out_type, out, out_start)
            per_row = NR // LANES
            for i in range(pixels_per_tile):
                pixel = builder.mul(_const(i), out_step)
                for v in range(per_row):
                    for lane in range(LANES):
                        at = builder.add(builder.mul(_const(v * LANES + lane), out_channel_step), pixel)
                        value = builder.extract_element(sums[i * per_row + v], ir.Constant(ir.IntType(32), lane))
                        builder.store(value, builder.gep(first, [at]))
            return context.get_dummy_value()

        return signature, codegen

    return tile_conv


tile_conv, tile_conv_stride2 = _tile_conv(MR_CONV, 1), _tile_conv(MR_CONV, 2)
tile_conv_narrow, tile_conv_narrow_stride2 = _tile_conv(MR_CONV // 2, 1), _tile_conv(MR_CONV // 2, 2)


@intrinsic
def tile_conv_weights(typingctx, x, x_start, taps, pixels, dy, dy_start, dy_row_step, c, c_start, c_row_step,
                      count, accumulate):
    """C[i, j] (+)= sum_{q < count} x[x_start + taps[i] + pixels[q]] dy[dy_start + q * dy_row_step + j]
    for i < MR window taps and j < NR output channels, C[i, j] at c_start + i * c_row_step + j: a
    convolution's weight gradient over one image, its input read straight from the padded image
    (taps: the window offsets, pixels: the output pixels' offsets; both int64). count >= 1."""
    signature = types.void(x, types.int64, taps, pixels, dy, types.int64, types.int64, c, types.int64,
                           types.int64, types.int64, types.boolean)

    def codegen(context, builder, sig, args):
        x, x_start, taps, pixels, dy, dy_start, dy_row_step, c, c_start, c_row_step, count, accumulate = args
        x_type, taps_type, pixels_type, dy_type, c_type = (sig.args[i] for i in (0, 2, 3, 4, 7))
        tap_of = context.make_array(taps_type)(context, builder, taps).data
        pixel_of = context.make_array(pixels_type)(context, builder, pixels).data
        a_rows = [_data_pointer(context, builder, x_type, x,
                                builder.add(x_start, builder.load(builder.gep(tap_of, [_const(i)]))))
                  for i in range(MR_W)]
        per_row = NR_W // LANES
        sums = _broadcast_products(builder, a_rows, lambda q: builder.load(builder.gep(pixel_of, [q])),
                                   _data_pointer(context, builder, dy_type, dy, dy_start), dy_row_step, count, per_row)
        _store_tile(context, builder, c_type, c, c_start, c_row_step, sums, per_row, accumulate)
        return context.get_dummy_value()

    return signature, codegen


def _vector_sum(builder, vector):
    """The sum of a vector's 16 lanes, by halves."""
    width = LANES
    while width > 1:
        width //= 2
        halves = [builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                                     [offset + (i % width) for i in range(LANES)]))
                  for offset in (0, width)]
        vector = builder.fadd(*halves)
    return builder.extract_element(vector, ir.Constant(ir.IntType(32), 0))


@intrinsic
def tile_nt(typingctx, a, a_start, a_row_step, bt, bt_start, bt_row_step, c, c_start, c_row_step, kc,
            accumulate):
    """C[i, j] (+)= sum_{k < kc} A[i, k] Bt[j, k] for an NT_ROWS x NT_COLS tile; A[i, k] at
    a_start + i * a_row_step + k, Bt[j, k] at bt_start + j * bt_row_step + k, C[i, j] at
    c_start + i * c_row_step + j. kc >= 1; when kc is not a multiple of 16, the last
    kc % 16 columns are read as the end of a vector that starts up to 15 floats before
    a_start / bt_start + kc - 16 (which must lie in the rows), its other lanes set to 0."""
    signature = types.void(a, types.int64, types.int64, bt, types.int64, types.int64, c, types.int64,
                           types.int64, types.int64, types.boolean)

    def codegen(context, builder, sig, args):
        a, a_start, a_row_step, bt, bt_start, bt_row_step, c, c_start, c_row_step, kc, accumulate = args
        a_type, bt_type, c_type = sig.args[0], sig.args[3], sig.args[6]
        a_rows = [_data_pointer(context, builder, a_type, a, builder.add(a_start, builder.mul(_const(i), a_row_step)))
                  for i in range(NT_ROWS)]
        bt_rows = [_data_pointer(context, builder, bt_type, bt,
                                 builder.add(bt_start, builder.mul(_const(j), bt_row_step)))
                   for j in range(NT_COLS)]
        fma = _fma(builder)

        def products(offset, acc, mask=None):
            a_vectors, bt_vectors = ([_load_vector(builder, builder.gep(row, [offset])) for row in rows]
                                     for rows in (a_rows, bt_rows))
            if mask is not None:  # both sides, so that a lane counted already adds 0, never 0 * inf
                zero = ir.Constant(_VECTOR, [0.0] * LANES)
                a_vectors, bt_vectors = ([builder.select(mask, vector, zero) for vector in vectors]
                                         for vectors in (a_vectors, bt_vectors))
            return [builder.call(fma, [a_vectors[i], bt_vectors[j], acc[i * NT_COLS + j]])
                    for i in range(NT_ROWS) for j in range(NT_COLS)]

        chunks = builder.sdiv(kc, _const(LANES))
        k, acc, close = _counted_loop(builder, chunks, NT_ROWS * NT_COLS)
        sums = close(products(builder.mul(k, _const(LANES)), acc))
        # the last kc % 16 columns: lanes 16 - kc % 16 .. 15 of the vector ending at column kc
        tail = builder.srem(kc, _const(LANES))
        lane = ir.Constant(ir.VectorType(ir.IntType(32), LANES), list(range(LANES)))
        first_lane = builder.trunc(builder.sub(_const(LANES), tail), ir.IntType(32))
        splat = builder.shuffle_vector(
            builder.insert_element(ir.Constant(lane.type, ir.Undefined), first_lane, ir.Constant(ir.IntType(32), 0)),
            ir.Constant(lane.type, ir.Undefined), ir.Constant(lane.type, [0] * LANES))
        mask = builder.icmp_signed(">=", lane, splat)
        without_tail = builder.block
        with builder.if_then(builder.icmp_signed(">", tail, _const(0))):
            with_tail = products(builder.sub(kc, _const(LANES)), sums, mask)
            tail_end = builder.block
        totals = []
        for before, after in zip(sums, with_tail):
            total = builder.phi(_VECTOR)
            total.add_incoming(before, without_tail)
            total.add_incoming(after, tail_end)
            totals.append(total)
        for i in range(NT_ROWS):
            c_row = _data_pointer(context, builder, c_type, c, builder.add(c_start, builder.mul(_const(i), c_row_step)))
            for j in range(NT_COLS):
                target = builder.gep(c_row, [_const(j)])
                value = _vector_sum(builder, totals[i * NT_COLS + j])
                builder.store(builder.select(accumulate, builder.fadd(builder.load(target), value), value), target)
        return context.get_dummy_value()

    return signature, codegen


JIT = {"cache": True, "error_model": "numpy"}


@njit(parallel=True, **JIT)
def _product_nn(A, B, C):
    """C = A @ B by tile_nn; M >= MR, N >= NR, K >= 1, B with unit column stride, C C-contiguous."""
    M, K = A.shape
    N = B.shape[1]
    a_row, a_col = A.strides[0] // 4, A.strides[1] // 4
    b_row, c_row = B.strides[0] // 4, C.strides[0] // 4
    full_rows = M // MR
    for panel in prange(N // NR):
        j = panel * NR
        for k in range(0, K, KC_NN):
            for tile in range(full_rows):
                i = tile * MR
                tile_nn(A, i * a_row + k * a_col, a_row, a_col, B, k * b_row + j, b_row, C, i * c_row + j, c_row,
                        min(KC_NN, K - k), k > 0)
        if M % MR:  # the last rows: a tile ending at row M, all of K at once
            i = M - MR
            tile_nn(A, i * a_row, a_row, a_col, B, j, b_row, C, i * c_row + j, c_row, K, False)
    if N % NR:  # the last columns, after every panel is done (the tile overlaps one)
        j = N - NR
        for tile in prange(-(-M // MR)):
            i = min(tile * MR, M - MR)
            tile_nn(A, i * a_row, a_row, a_col, B, j, b_row, C, i * c_row + j, c_row, K, False)


@njit(parallel=True, **JIT)
def _product_nt(A, Bt, C):
    """C = A @ Bt^T by tile_nt; M >= NT_ROWS, N >= NT_COLS, K >= 16, A and Bt with unit column
    stride, C C-contiguous."""
    M, K = A.shape
    N = Bt.shape[0]
    a_row, bt_row, c_row = A.strides[0] // 4, Bt.strides[0] // 4, C.strides[0] // 4
    for panel in prange(N // NT_COLS):
        j = panel * NT_COLS
        for k in range(0, K, KC_NT):
            for tile in range(M // NT_ROWS):
                i = tile * NT_ROWS
                tile_nt(A, i * a_row + k, a_row, Bt, j * bt_row + k, bt_row, C, i * c_row + j, c_row,
                        min(KC_NT, K - k), k > 0)
        if M % NT_ROWS:
            i = M - NT_ROWS
            tile_nt(A, i * a_row, a_row, Bt, j * bt_row, bt_row, C, i * c_row + j, c_row, K, False)
    if N % NT_COLS:
        j = N - NT_COLS
        for tile in prange(-(-M // NT_ROWS)):
            i = min(tile * NT_ROWS, M - NT_ROWS)
            tile_nt(A, i * a_row, a_row, Bt, j * bt_row, bt_row, C, i * c_row + j, c_row, K, False)


@njit(parallel=True, **JIT)
def _correlate_direct(x_padded, stride, B, offsets, y, Ho, Wo, first, row_step, pixel_step):
    """The correlation of x_padded (N, C, Hp, Wp) with B (C*kh*kw, F) at `stride` (1 or 2), the
    window offsets of its rows in `offsets`, into Ho x Wo pixels of each (n, f) plane of y
    (N, F, ...): output pixel (h, w) at first + h * row_step + w * pixel_step of the plane.
    Wo >= MR_CONV // 2, F >= NR."""
    N, C, Hp, Wp = x_padded.shape
    F = B.shape[1]
    plane = y[0, 0].size
    pixels = MR_CONV if Wo >= MR_CONV else MR_CONV // 2
    for task in prange(N * Ho):  # one output row of one image
        n, h = task // Ho, task % Ho
        for panel in range(-(-F // NR)):
            f = min(panel * NR, F - NR)
            for tile in range(-(-Wo // pixels)):
                w = min(tile * pixels, Wo - pixels)
                x_start = (n * C * Hp + h * stride) * Wp + w * stride
                y_start = (n * F + f) * plane + first + h * row_step + w * pixel_step
                if pixels == MR_CONV and stride == 1:
                    tile_conv(x_padded, x_start, offsets, B, f, F, y, y_start, pixel_step, plane, B.shape[0])
                elif pixels == MR_CONV:
                    tile_conv_stride2(x_padded, x_start, offsets, B, f, F, y, y_start, pixel_step, plane, B.shape[0])
                elif stride == 1:
                    tile_conv_narrow(x_padded, x_start, offsets, B, f, F, y, y_start, pixel_step, plane, B.shape[0])
                else:
                    tile_conv_narrow_stride2(x_padded, x_start, offsets, B, f, F, y, y_start, pixel_step, plane,
                                             B.shape[0])


@njit(parallel=True, **JIT)
def _correlate_weight_gradient(x_padded, dy_by_pixel, taps, pixels, dW, parts):
    """dW (K, F) = sum over images n and pixels p of x_padded[n] at taps[k] + pixels[p] times
    dy_by_pixel[n, p, f]; K a multiple of MR_W, F of NR_W. Each thread owns whole tiles of dW and
    walks the images once, so an image's data stays in cache for all of its tiles."""
    N = x_padded.shape[0]
    image_size = x_padded[0].size
    P, F = dy_by_pixel.shape[1], dy_by_pixel.shape[2]
    panels = F // NR_W
    tiles = dW.shape[0] // MR_W * panels
    for part in prange(parts):
        for n in range(N):
            for tile in range(part * tiles // parts, (part + 1) * tiles // parts):
                k, f = tile // panels * MR_W, tile % panels * NR_W
                tile_conv_weights(x_padded, n * image_size, taps[k:k + MR_W], pixels, dy_by_pixel, (n * P) * F + f, F,
                                  dW, k * F + f, F, P, n > 0)


def correlate_fits(out_width, out_channels, stride):
    """Whether `correlate` serves a convolution: stride 1 or 2, output rows and channels a tile wide."""
    return stride in (1, 2) and out_width >= MR_CONV // 2 and out_channels >= NR


def _window_offsets(C, kh, kw, Hp, Wp):
    """Offset in a padded (C, Hp, Wp) image of tap (c, i, j) of a window, in im2col's row order."""
    c, i, j = np.meshgrid(np.arange(C), np.arange(kh), np.arange(kw), indexing="ij")
    return ((c * Hp + i) * Wp + j).ravel().astype(np.int64)


@njit(parallel=True, **JIT)
def _pad_planes(x, pad, out):
    N, C, H, W = x.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        padded = out[n, c]
        padded[:pad] = 0
        padded[pad + H:] = 0
        for h in range(H):  # each pixel written once
            row = padded[pad + h]
            row[:pad] = 0
            row[pad + W:] = 0
            for w in range(W):
                row[pad + w] = x[n, c, h, w]


def zero_padded(x, pad):
    """x (N, C, H, W) float32 with `pad` zeros around each plane: the input of the correlations."""
    N, C, H, W = x.shape
    x_padded = np.empty((N, C, H + 2 * pad, W + 2 * pad), np.float32)
    _pad_planes(np.ascontiguousarray(x), pad, x_padded)
    return x_padded


@njit(parallel=True, **JIT)
def _pixels_by_channel(dy, out):
    """out (N, Ho*Wo, >= F): out[n, p, f] = dy[n, f, p], channels past F zero."""
    N, F, Ho, Wo = dy.shape
    for n in prange(N):
        image, pixels = dy[n].reshape(F, Ho * Wo), out[n]
        pixels[:, F:] = 0
        for p in range(Ho * Wo):
            for f in range(F):
                pixels[p, f] = image[f, p]


def correlate(x_padded, W, stride=1):
    """Cross-correlation of x_padded (N, C, Hp, Wp, `zero_padded`) with W (F, C, kh, kw) at
    `stride`: (N, F, Ho, Wo) float32, read straight from the padded image (no columns)."""
    N, C, Hp, Wp = x_padded.shape
    F, _, kh, kw = W.shape
    Ho, Wo = (Hp - kh) // stride + 1, (Wp - kw) // stride + 1
    y = np.empty((N, F, Ho, Wo), np.float32)
    B = np.ascontiguousarray(W.reshape(F, -1).T)
    _correlate_direct(x_padded, stride, B, _window_offsets(C, kh, kw, Hp, Wp), y, Ho, Wo, 0, Wo, 1)
    return y


def transposed_fits(out_width, out_channels, stride):
    """Whether `correlate_transposed` serves a transposed convolution: its phases' rows and
    its channels a tile wide."""
    return out_width // stride >= MR_CONV // 2 and out_channels >= NR


def correlate_transposed(x, W, stride, pad, out_shape):
    """The transposed convolution (the adjoint in x of the correlation with W, `stride`, `pad`)
    of x (N, C_in, H, W) with W (C_in, C_out, kh, kw) into (N, C_out) + out_shape, without columns.

    Output row Y = stride * u + r gathers the taps i = r + pad (mod stride), from input rows
    (Y + pad - i) / stride; so each phase (r, s) of the output is a stride-1 correlation of x
    with the taps of its phase (flipped), written to every stride-th pixel."""
    N, C_in, H, Wd = x.shape
    _, C_out, kh, kw = W.shape
    Hout, Wout = out_shape
    margin = max(kh, kw) // stride + 1  # padding that every phase's taps stay within
    x_padded = zero_padded(x, margin)
    Hp, Wp = x_padded.shape[2:]
    y = np.empty((N, C_out, Hout, Wout), np.float32)
    channels = np.arange(C_in)[:, None, None]
    for r in range(stride):
        rows = np.arange(kh)[(np.arange(kh) - r - pad) % stride == 0]
        for s in range(stride):
            cols = np.arange(kw)[(np.arange(kw) - s - pad) % stride == 0]
            taps_i, taps_j = rows[:, None], cols[None, :]
            # tap (i, j) of output pixel (u, v) reads input (u + (r + pad - i) / stride, v + ...), padded by margin
            offsets = ((channels * Hp + (r + pad - taps_i) // stride + margin) * Wp
                       + (s + pad - taps_j) // stride + margin)
            B = np.ascontiguousarray(W[:, :, taps_i, taps_j].transpose(0, 2, 3, 1).reshape(-1, C_out))
            _correlate_direct(x_padded, 1, B, offsets.ravel().astype(np.int64), y, -(-(Hout - r) // stride),
                              -(-(Wout - s) // stride), r * Wout + s, stride * Wout, stride)
    return y


def weight_gradient_fits(in_channels, kh, kw):
    """Whether `correlate_weight_gradient` serves a convolution: whole tiles of window taps."""
    return in_channels * kh * kw % MR_W == 0


def correlate_weight_gradient(x_padded, dy, kh, kw, stride=1):
    """dL/dW (F, C, kh, kw) of the correlation of x_padded (N, C, Hp, Wp, `zero_padded`) at
    `stride`, given dy (N, F, Ho, Wo): the columns' product dy_rows @ cols^T without the columns.
    dy is laid out pixel by pixel, its channels padded with zeros to whole tiles (NR_W)."""
    N, C = x_padded.shape[:2]
    _, F, Ho, Wo = dy.shape
    dy_by_pixel = np.empty((N, Ho * Wo, -(-F // NR_W) * NR_W), np.float32)
    _pixels_by_channel(np.ascontiguousarray(dy), dy_by_pixel)
    channels = dy_by_pixel.shape[2]
    h, w = np.meshgrid(np.arange(Ho), np.arange(Wo), indexing="ij")
    Hp, Wp = x_padded.shape[2:]
    dW = np.empty((C * kh * kw, channels), np.float32)
    _correlate_weight_gradient(x_padded, dy_by_pixel, _window_offsets(C, kh, kw, Hp, Wp),
                               (stride * (h * Wp + w)).ravel().astype(np.int64), dW, get_num_threads())
    return np.ascontiguousarray(dW[:, :F].T).reshape(F, C, kh, kw)


def _padded(x, rows, cols):
    """x in the top-left corner of a zero (max(rows, ...), max(cols, ...)) array, or x itself."""
    if x.shape[0] >= rows and x.shape[1] >= cols:
        return x
    out = np.zeros((max(rows, x.shape[0]), max(cols, x.shape[1])), np.float32)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def _unit_column_stride(x):
    return x.strides[1] == 4 or x.shape[1] == 1


def matmul(a, b):
    """a @ b for float32 2-D NumPy arrays a (M, K), b (K, N) -> a new C-contiguous (M, N)."""
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    (M, K), N = a.shape, b.shape[1]
    if K == 0 or M == 0 or N == 0:
        return np.zeros((M, N), np.float32)
    if _unit_column_stride(b):
        a_, b_ = _padded(a, MR, K), _padded(b, K, NR)
        c = np.empty((a_.shape[0], b_.shape[1]), np.float32)
        _product_nn(a_, b_, c)
    else:
        bt = b.T  # unit column stride when b's rows are not contiguous but its columns are
        if not _unit_column_stride(bt):
            bt = np.ascontiguousarray(bt)
        a_ = a if _unit_column_stride(a) else np.ascontiguousarray(a)
        a_, bt = _padded(a_, NT_ROWS, LANES), _padded(bt, NT_COLS, LANES)
        c = np.empty((a_.shape[0], bt.shape[0]), np.float32)
        _product_nt(a_, bt, c)
    return c if c.shape == (M, N) else np.ascontiguousarray(c[:M, :N])


USEFUL = calibration.own_products_serve(HAS_AVX512, matmul, correlate, zero_padded)
