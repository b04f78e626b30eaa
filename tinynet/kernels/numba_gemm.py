"""A float32 matrix product for CPUs with AVX-512, on every core: the products are about
three quarters of a training step on the CPU (bench/RESULTS.md).

NumPy's `a @ b` (OpenBLAS) picks its kernels from the CPU, or from OPENBLAS_CORETYPE where
the machine sets it; held to the AVX2 ("Haswell") kernels it multiplies at half of what an
AVX-512 core can. This module computes C = A @ B tile by tile with register tiles written
in LLVM vector instructions (a Numba intrinsic each), 16 floats to a vector:

    tile_nn (MR x NR of C): for each k, NR / 16 vectors of row k of B, and each of the MR
        elements A[i, k] broadcast to a vector; MR * NR / 16 fused multiply-adds.
        B needs contiguous rows (unit stride along N); A may have any strides.
    tile_nt (4 x 4 of C): C[i, j] = row i of A . row j of B^T, each a vector over 16 k at a
        time, summed across the vector at the end. For B = (a C-contiguous matrix).T, where
        the rows of B are not contiguous but its columns are.

Tiles that would cross the edge of C are moved back to end at the edge (overlapping the
tile before; the overlap is written last, with the same product) and products narrower than
a tile are padded, so the tiles read and write only inside the arrays. K is taken in blocks
that keep a tile's slices of A and B in cache. The column panels of C are shared out over
Numba's threads (prange); each element of C is always summed in the same order, whatever the
thread count, so results repeat exactly.

The plain `a @ b` is the reference twin (tests/test_kernels.py). The kernels compile for any
CPU (LLVM splits the 16-float vectors where they are wider than the hardware's), but serve
tinynet.functional.matmul only where the CPU has AVX-512 (`USEFUL`): elsewhere OpenBLAS's own
kernels are as fast.
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

USEFUL = bool(llvm.get_host_cpu_features().get("avx512f", False))

LANES = 16              # floats in one 512-bit vector
MR, NR = 10, 32         # tile_nn: 10 rows x 2 vectors = 20 of the 32 vector registers
NT_ROWS, NT_COLS = 4, 6  # tile_nt: 4 x 6 vector sums
KC_NN = 256             # k per block: a 256 x 32 slice of B stays in the 48 KiB L1 cache
KC_NT = 2048            # k per block of tile_nt, a multiple of LANES: 8 rows of 8 KiB in L2

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


def _store_tile_row(builder, pointer, values, accumulate):
    """pointer[0:16*len(values)] = values (+ what is there when accumulate)."""
    for v, value in enumerate(values):
        target = builder.bitcast(builder.gep(pointer, [_const(LANES * v)]), _VECTOR.as_pointer())
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
        b_first = _data_pointer(context, builder, b_type, b, b_start)
        fma = _fma(builder)
        k, acc, close = _counted_loop(builder, kc, MR * NR // LANES)
        b_row = builder.gep(b_first, [builder.mul(k, b_row_step)])
        b_vectors = [_load_vector(builder, builder.gep(b_row, [_const(LANES * v)])) for v in range(NR // LANES)]
        a_col = builder.mul(k, a_col_step)
        new = []
        for i in range(MR):
            a_ik = builder.load(builder.gep(a_rows[i], [a_col]))
            broadcast = builder.shuffle_vector(
                builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), a_ik, ir.Constant(ir.IntType(32), 0)),
                ir.Constant(_VECTOR, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
            new += [builder.call(fma, [broadcast, b_vector, acc[i * len(b_vectors) + v]])
                    for v, b_vector in enumerate(b_vectors)]
        sums = close(new)
        per_row = NR // LANES
        for i in range(MR):
            c_row = _data_pointer(context, builder, c_type, c, builder.add(c_start, builder.mul(_const(i), c_row_step)))
            _store_tile_row(builder, c_row, sums[i * per_row:(i + 1) * per_row], accumulate)
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
    """C[i, j] (+)= sum_{k < kc} A[i, k] Bt[j, k] for a 4 x 4 tile; A[i, k] at
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
        bt_rows = [_data_pointer(context, builder, bt_type, bt, builder.add(bt_start, builder.mul(_const(j), bt_row_step)))
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
    """C = A @ Bt^T by tile_nt; M, N >= 4, K >= 16, A and Bt with unit column stride, C C-contiguous."""
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
