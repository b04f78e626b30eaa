"""Every CUDA source of tinynet.accel.gpu compiles, on any machine, GPU or not: NVRTC (NVIDIA's
runtime compiler, the one CuPy calls) compiles each RawModule with the code, options and name
expressions that fused.py and update.py pass (tinynet.accel.gpu.sources), each elementwise and
reduction kernel inside a wrapper that declares its arguments as CuPy does, and the parameter
update's source for the CNN-LSTM's and the CNN-CNN's layouts, for float and double, for three
GPU generations. A broken copy of a source must fail. Needs the cuda-check extra (pip install
-e ".[cuda-check]": NVRTC's wheel and cuda-bindings); the NVRTC tests skip without it.
"""

import ast
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from mnist_half.config import DEFAULTS
from mnist_half.models import build_model
from tinynet.accel.gpu import sources

ARCHITECTURES = ("compute_70", "compute_80", "compute_90")  # Volta, Ampere, Hopper
FLOAT_TYPES = tuple(sources.FLOAT_TYPES.values())
# NVRTC 12 compiles for Volta but says it may stop doing so; any other warning fails
ALLOWED_WARNING = re.compile(r"warning: Architectures prior to '<compute/sm>_75' are deprecated")
GPU = Path(sources.__file__).parent
KERNEL_CLASSES = ("ElementwiseKernel", "ReductionKernel", "RawModule", "RawKernel")
# C types of the dtype names that the kernels' declarations use (T stays T, typedef'd)
C_TYPES = {"int64": "long long", "int32": "int", "uint32": "unsigned int", "float32": "float", "float64": "double"}

# What CuPy's generated kernels rely on: CArray's element access (a const array gives const
# elements), and ptrdiff_t loop indices.
CUPY_LIKE_HEADER = """
template <typename E> struct RawArray {
    E* data_;
    __device__ E& operator[](ptrdiff_t i) { return data_[i]; }
    __device__ const E& operator[](ptrdiff_t i) const { return data_[i]; }
};
#define CUPY_FOR(i, n) for (ptrdiff_t i = (ptrdiff_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \\
                            i += (ptrdiff_t)blockDim.x * gridDim.x)
"""


class CompileError(Exception):
    """NVRTC refused a source; the message is its log."""


class Compiled(NamedTuple):
    ptx: str
    log: str
    lowered: dict  # name expression -> mangled kernel name


@pytest.fixture(scope="module")
def nvrtc():
    return pytest.importorskip("cuda.bindings.nvrtc", reason="needs NVRTC: pip install -e '.[cuda-check]' "
                                                             "(nvidia-cuda-nvrtc-cu12 and cuda-bindings)")


def _checked(nvrtc, returned):
    """The values of an NVRTC call's (result, *values), raising on a failed result."""
    result, *values = returned if isinstance(returned, tuple) else (returned,)
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CompileError(f"NVRTC call failed: {result!r}")
    return values[0] if len(values) == 1 else values


def compile_cuda(nvrtc, code, options, arch, name_expressions=()):
    """Compile `code` to PTX for `arch` with `options`, as CuPy does (the `name_expressions`
    registered first, then looked up); raises CompileError with NVRTC's log if it fails or
    warns."""
    program = _checked(nvrtc, nvrtc.nvrtcCreateProgram(code.encode(), b"tinynet.cu", 0, [], []))
    try:
        for name in name_expressions:
            _checked(nvrtc, nvrtc.nvrtcAddNameExpression(program, name.encode()))
        arguments = [f"--gpu-architecture={arch}".encode(), *(option.encode() for option in options)]
        (result,) = nvrtc.nvrtcCompileProgram(program, len(arguments), arguments)
        log = bytearray(_checked(nvrtc, nvrtc.nvrtcGetProgramLogSize(program)))
        _checked(nvrtc, nvrtc.nvrtcGetProgramLog(program, log))
        log = log.rstrip(b"\0").decode()
        warnings = [line for line in log.splitlines() if "warning" in line and not ALLOWED_WARNING.search(line)]
        if result != nvrtc.nvrtcResult.NVRTC_SUCCESS or warnings:
            raise CompileError(f"{arch}, {result!r}:\n{log}")
        lowered = {name: _checked(nvrtc, nvrtc.nvrtcGetLoweredName(program, name.encode())).decode()
                   for name in name_expressions}
        ptx = bytearray(_checked(nvrtc, nvrtc.nvrtcGetPTXSize(program)))
        _checked(nvrtc, nvrtc.nvrtcGetPTX(program, ptx))
        return Compiled(ptx.rstrip(b"\0").decode(), log, lowered)
    finally:
        _checked(nvrtc, nvrtc.nvrtcDestroyProgram(program))


def kernel_entries(ptx):
    """The names of the kernels (.entry) in a PTX text."""
    return set(re.findall(r"\.entry\s+([\w$]+)\s*\(", ptx))


def _declared(params, inputs):
    """(C parameter, element declaration or None) for each of a CuPy kernel's `params`
    ("T x, raw T y, int64 n"), as CuPy declares them: inputs const, a non-raw argument
    through its array `_raw_<name>`, a raw one as the array itself."""
    declared = []
    for param in params.split(","):
        *keywords, type_name, name = param.split()
        c_type = type_name if len(type_name) == 1 else C_TYPES[type_name]
        const = "const " if inputs else ""
        if "raw" in keywords:
            declared.append((f"{const}RawArray<{c_type}> {name}", None))
        else:
            declared.append((f"{const}RawArray<{c_type}> _raw_{name}", f"{const}{c_type} &{name} = _raw_{name}[i];"))
    return declared


def elementwise_wrapper(kernel, float_type):
    """The CUDA of a kernel that runs `kernel`'s (a sources.Elementwise) operation as
    cupy.ElementwiseKernel does: T typedef'd, the preamble, CuPy's loop over `i`."""
    declared = _declared(kernel.in_params, True) + _declared(kernel.out_params, False)
    params = ", ".join([param for param, _ in declared] + ["const ptrdiff_t _n"])
    elements = "\n".join(f"        {element}" for _, element in declared if element)
    return (f"typedef {float_type} T;\n{CUPY_LIKE_HEADER}\n{sources.ELEMENTWISE_PREAMBLE}\n"
            f'extern "C" __global__ void {kernel.name}({params}) {{\n'
            f"    CUPY_FOR(i, _n) {{\n{elements}\n        {kernel.operation};\n    }}\n}}\n")


def reduction_wrapper(kernel, float_type):
    """The CUDA of a kernel that runs `kernel`'s (a sources.Reduction) expressions as
    cupy.ReductionKernel does: REDUCE and POST_MAP as macros, the map over `_j`."""
    inputs, outputs = _declared(kernel.in_params, True), _declared(kernel.out_params, False)
    params = ", ".join([param for param, _ in inputs + outputs] + ["const ptrdiff_t _n"])
    read = "\n".join(f"        {element.replace('[i]', '[_j]')}" for _, element in inputs)
    write = "\n".join(f"        {element.replace('[i]', '[0]')}" for _, element in outputs)
    return (f"typedef {float_type} T;\n{CUPY_LIKE_HEADER}\n"
            f"#define REDUCE(a, b) ({kernel.reduce_expr})\n#define POST_MAP(a) ({kernel.post_map_expr})\n"
            f"typedef T _type_reduce;\n"
            f'extern "C" __global__ void {kernel.name}({params}) {{\n'
            f"    _type_reduce _s = _type_reduce({kernel.identity});\n"
            f"    for (ptrdiff_t _j = threadIdx.x; _j < _n; _j += blockDim.x) {{\n{read}\n"
            f"        _type_reduce _a = static_cast<_type_reduce>({kernel.map_expr});\n"
            f"        _s = REDUCE(_s, _a);\n    }}\n"
            f"    if (threadIdx.x == 0) {{\n{write}\n        POST_MAP(_s);\n    }}\n}}\n")


def model_layout(name):
    """(sizes, weights) of the tensors of model `name` as tinynet.accel.gpu.ops.update_parameters
    hands them to update.update_all (one member: each member is updated alone)."""
    model = build_model(name, np.random.default_rng(0), DEFAULTS, 0.5)
    params, weights = model.named_params(), model.named_weights()
    return tuple(int(p.size) for p in params.values()), tuple(name in weights for name in params)


def compile_raw(nvrtc, raw, arch):
    compiled = compile_cuda(nvrtc, raw.code, raw.options, arch, raw.name_expressions)
    assert set(compiled.lowered.values()) <= kernel_entries(compiled.ptx)
    return compiled


# ---- what the code compiles is what is declared here ----

def test_every_kernel_the_gpu_modules_build_is_declared_in_sources():
    """CuPy kernels are built in four functions only, from sources' declarations, and those
    are the ones compiled below (so a new kernel cannot skip this test)."""
    builders = set()
    for path in sorted(GPU.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, ast.FunctionDef) and any(
                    isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "cupy"
                    and node.attr in KERNEL_CLASSES for node in ast.walk(function)):
                builders.add(f"{path.stem}.{function.name}")
    assert builders == {"fused._elementwise_kernel", "fused._reduction_kernel", "fused._raw_module",
                        "update._update_module"}
    built = {}
    for node in ast.walk(ast.parse((GPU / "fused.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("_elementwise_kernel",
                                                                              "_reduction_kernel", "_raw_module"):
            built.setdefault(node.func.id, set()).add(ast.unparse(node.args[0]))
    elementwise = {eval(expression, {"sources": sources, "literal_eq13": literal})
                   for expression in built["_elementwise_kernel"] for literal in (False, True)}
    assert elementwise == set(sources.ELEMENTWISE)
    assert {eval(expression, {"sources": sources}) for expression in built["_reduction_kernel"]} == set(
        sources.REDUCTIONS)
    assert {ast.literal_eval(expression) for expression in built["_raw_module"]} == set(sources.RAW_SOURCES)


def test_every_module_instantiates_each_float_type():
    for raw in sources.RAW_SOURCES.values():
        for float_type in FLOAT_TYPES:
            assert any(f"<{float_type}" in name for name in raw.name_expressions)


def test_the_device_flush_bound_is_the_hosts():
    """negligible.cuh spells out tinynet.negligible's bound for float and double, exactly."""
    from tinynet.negligible import negligible_below

    text = sources.NEGLIGIBLE_FUNCTIONS
    found = dict(re.findall(r"(float|double) negligible_below<\1>\(\) \{ return ([0-9.e+-]+)f?; \}", text))
    assert set(found) == {"float", "double"}
    assert float(found["float"]) == negligible_below(np.float32) == 2.0**-63
    assert float(found["double"]) == negligible_below(np.float64) == 2.0**-511


def test_update_layout_header_names_each_tensor():
    """Tensor i owns chunks first .. end - 1; a tensor one number over a chunk takes two."""
    chunk = sources.CHUNK
    assert sources.chunk_layout((chunk + 1, 5, chunk)) == ((0, 2, 3), 4)
    header = sources.update_layout_header(np.float32, (chunk + 1, 5), (True, False), with_average=False)
    assert header == (f"typedef float T;\nconst long long CHUNK = {chunk};\n#define CHUNKS 3\n"
                      f"#define WITH_AVERAGE 0\n#define TENSORS(X) \\\n    X(0, 0, 2, {chunk + 1}LL, 1) \\\n"
                      f"    X(1, 2, 3, 5LL, 0)\n")
    assert sources.update_layout_header(np.float64, (), (), True).startswith("typedef double T;")


# ---- NVRTC ----

@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("module", sorted(sources.RAW_SOURCES))
def test_raw_modules_compile(nvrtc, module, arch):
    raw = sources.RAW_SOURCES[module]
    compiled = compile_raw(nvrtc, raw, arch)
    assert len(compiled.lowered) == len(raw.name_expressions)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("float_type", FLOAT_TYPES)
def test_elementwise_and_reduction_kernels_compile(nvrtc, float_type, arch):
    for kernel in sources.ELEMENTWISE:
        compiled = compile_cuda(nvrtc, elementwise_wrapper(kernel, float_type), (), arch)
        assert kernel_entries(compiled.ptx) == {kernel.name}
    for kernel in sources.REDUCTIONS:
        compiled = compile_cuda(nvrtc, reduction_wrapper(kernel, float_type), (), arch)
        assert kernel_entries(compiled.ptx) == {kernel.name}


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("model", ["cnn-lstm", "cnn-cnn"])
def test_update_source_compiles_for_the_models(nvrtc, model, arch):
    sizes, weights = model_layout(model)
    assert any(weights) and not all(weights)
    for dtype in sources.FLOAT_TYPES:
        for with_average in (False, True):
            code = sources.update_source(dtype, sizes, weights, with_average)
            compiled = compile_cuda(nvrtc, code, sources.UPDATE_OPTIONS, arch)
            assert kernel_entries(compiled.ptx) == set(sources.UPDATE_KERNELS)


def test_the_update_takes_each_tensors_pointers(nvrtc):
    """The apply kernel's parameters: 9 scalars and pointers, then 4 pointers per tensor, 5
    with the average (update.update_all passes them in that order)."""
    for with_average, per_tensor in ((False, 4), (True, 5)):
        code = sources.update_source(np.float32, (3, sources.CHUNK * 2 + 1, 7), (True, True, False), with_average)
        ptx = compile_cuda(nvrtc, code, sources.UPDATE_OPTIONS, "compute_80").ptx
        apply = ptx[ptx.index(".entry tinynet_update_apply"):]
        assert len(re.findall(r"\.param", apply[:apply.index(")")])) == 9 + 3 * per_tensor
        squares = ptx[ptx.index(".entry tinynet_update_squares"):]
        assert len(re.findall(r"\.param", squares[:squares.index(")")])) == 2 + 3 * 2


# ---- a broken source fails ----

def _broken(text, old, new):
    assert old in text
    return text.replace(old, new, 1)


def test_a_broken_source_fails(nvrtc):
    gemm = sources.GEMM
    compile_raw(nvrtc, gemm, "compute_80")
    with pytest.raises(CompileError, match="error"):  # a semicolon deleted
        compile_raw(nvrtc, gemm._replace(code=_broken(gemm.code, "acc[i][j] = T(0);", "acc[i][j] = T(0)")),
                    "compute_80")
    with pytest.raises(CompileError, match="error"):  # a name expression of no kernel
        compile_raw(nvrtc, gemm._replace(name_expressions=("tinynet_gemm_typo<float,32>",)), "compute_80")

    kernel = sources.lstm_cell_forward_kernel(False)
    wrapper = elementwise_wrapper(kernel, "float")
    with pytest.raises(CompileError, match="identifier"):  # an unknown name in a body
        compile_cuda(nvrtc, _broken(wrapper, "c = forget_gate * c_prev", "c = forget_gate * c_previous"), (),
                     "compute_80")
    with pytest.raises(CompileError, match="error"):  # an operation naming an argument the kernel lacks
        compile_cuda(nvrtc, elementwise_wrapper(kernel._replace(operation=kernel.operation.replace("tanh_c)", "dc)")),
                                                "float"), (), "compute_80")

    code = sources.update_source(np.float32, (5, 9), (True, False), True)
    with pytest.raises(CompileError, match="error"):
        compile_cuda(nvrtc, _broken(code, "s.rate = AVERAGE_RATE;", "s.rate = AVERAGE_RATE"), (), "compute_80")
