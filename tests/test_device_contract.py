"""One suite, every device: the emulator always, the GPU (through pycuda, and through CuPy)
where there is one.

Like Optuna's storage tests: whatever passes here, the runtime may rely on for both.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from offloader.device import (GARBAGE_WORD, CompileError, CompileFailure, LaunchError,
                              LaunchFailure, open_device)

KERNELS = Path(__file__).parent / "fixtures" / "kernels"


def _gpu_or_skip(library):
    from offloader.device import cupy_device, pycuda_device

    device_class, available = {"pycuda": (pycuda_device.CudaDevice, pycuda_device.cuda_available),
                               "cupy": (cupy_device.CupyDevice, cupy_device.cupy_available)}[library]
    ok, why = available()
    if not ok:
        pytest.skip(why)
    return device_class()


@pytest.fixture(scope="module", params=["emu", pytest.param("pycuda", marks=pytest.mark.gpu),
                                        pytest.param("cupy", marks=pytest.mark.gpu)])
def device(request):
    dev = open_device("emu") if request.param == "emu" else _gpu_or_skip(request.param)
    yield dev
    dev.close()


@pytest.fixture(scope="module")
def module(device):
    return device.compile((KERNELS / "contract.cu").read_text())


def upload(device, array):
    buf = device.alloc(array.nbytes)
    device.copy_to_device(buf, array)
    return buf


def download(device, buf, dtype, count):
    out = np.empty(count, dtype=dtype)
    device.copy_to_host(buf, out)
    return out


def test_vector_add(device, module):
    n = 10_000
    a = np.arange(n, dtype=np.float32)
    b = np.full(n, 0.5, dtype=np.float32)
    c = device.alloc(a.nbytes)
    seconds = device.launch(module, "vector_add", ((n + 255) // 256,), (256,),
                            [upload(device, a), upload(device, b), c, np.int32(n)])
    assert seconds > 0
    np.testing.assert_array_equal(download(device, c, np.float32, n), a + b)


def test_2d_grid_stride_kernel_covers_a_non_square_array(device, module):
    rows, cols = 37, 70
    x = np.arange(rows * cols, dtype=np.float64).reshape(rows, cols)
    out = device.alloc(x.nbytes)
    device.launch(module, "scale_2d", (2, 2), (16, 8), [upload(device, x), out, np.int32(rows), np.int32(cols)])
    expected = 2 * x + np.arange(rows)[:, None]
    np.testing.assert_array_equal(download(device, out, np.float64, x.size).reshape(rows, cols), expected)


def test_shared_memory_tree_reduction_is_exact_and_deterministic(device, module):
    n = 256 * 40 + 3
    x = (np.arange(n) % 7).astype(np.float32)  # small integers: every partial sum is exact
    xs, partial = upload(device, x), device.alloc(41 * 4)
    results = []
    for _ in range(2):
        device.launch(module, "block_sum", (41,), (256,), [xs, partial, np.int32(n)])
        results.append(download(device, partial, np.float32, 41))
    expected = np.add.reduceat(np.append(x, np.zeros(41 * 256 - n, np.float32)), np.arange(0, 41 * 256, 256))
    np.testing.assert_array_equal(results[0], expected)
    np.testing.assert_array_equal(results[1], results[0])


def test_atomic_add_reductions(device, module):
    n = 50_000
    x = (np.arange(n) % 11).astype(np.int32)
    total = upload(device, np.zeros(1, np.int32))
    device.launch(module, "atomic_sum", (64,), (128,), [upload(device, x), total, np.int32(n)])
    assert download(device, total, np.int32, 1)[0] == x.sum()
    xd = x.astype(np.float64) * 0.5
    total_d = upload(device, np.zeros(1, np.float64))
    device.launch(module, "atomic_sum_double", ((n + 255) // 256,), (256,), [upload(device, xd), total_d, np.int32(n)])
    assert download(device, total_d, np.float64, 1)[0] == xd.sum()


def test_scalar_arguments_of_each_type_arrive_intact(device, module):
    values = [np.int32(-7), np.int64(-(2**40) - 3), np.float32(1.5), np.float64(2.25),
              np.uint32(4_000_000_000), np.uint64(2**50 + 1)]
    out = device.alloc(6 * 8)
    device.launch(module, "scalars", (1,), (1,), [*values, out])
    np.testing.assert_array_equal(download(device, out, np.float64, 6), [float(v) for v in values])


def test_kernel_without_parameters(device, module):
    assert device.launch(module, "nothing", (3, 2, 1), (4, 4, 4), []) >= 0


def test_copies_round_trip_and_are_checked(device):
    data = np.random.default_rng(0).integers(0, 255, 1000, dtype=np.uint8)
    buf = upload(device, data)
    np.testing.assert_array_equal(download(device, buf, np.uint8, 1000), data)
    device.copy_to_device(buf, b"\x01\x02\x03")           # bytes, into the start of the buffer
    assert download(device, buf, np.uint8, 4).tolist() == [1, 2, 3, data[3]]
    with pytest.raises(ValueError):
        device.copy_to_device(buf, np.zeros(1001, np.uint8))
    with pytest.raises(ValueError):
        device.copy_to_host(buf, np.zeros((4, 4), np.uint8)[:, ::2])
    device.free(buf)
    with pytest.raises(ValueError):
        device.copy_to_host(buf, np.zeros(4, np.uint8))


def test_fresh_allocations_hold_garbage(device):
    buf = device.alloc(4 * 10 + 2)
    words = download(device, buf, np.uint32, 10)
    assert (words == GARBAGE_WORD).all()
    assert np.isnan(download(device, buf, np.float32, 10)).all()
    assert np.isnan(download(device, buf, np.float64, 5)).all()
    assert download(device, buf, np.uint8, 42)[40:].tolist() == [0xAD, 0xDE]


def test_compile_errors_are_typed_and_carry_the_log(device):
    with pytest.raises(CompileError) as bad:
        device.compile('extern "C" __global__ void k(int *x)\n{\n    x[0] = undeclared;\n}\n')
    assert bad.value.code is CompileFailure.COMPILER_ERROR
    assert "undeclared" in bad.value.log and re.search(r"[:(]3[:)]", bad.value.log)  # g++ or nvcc
    with pytest.raises(CompileError) as mangled:
        device.compile("__global__ void k(int *x) { x[0] = 1; }")
    assert mangled.value.code is CompileFailure.BAD_SIGNATURE
    with pytest.raises(CompileError) as short:
        device.compile('extern "C" __global__ void k(short s, int *x) { x[0] = s; }')
    assert short.value.code is CompileFailure.BAD_SIGNATURE and "short" in short.value.message


@pytest.mark.parametrize("grid, block, args, code", [
    ((0,), (32,), "ok", LaunchFailure.BAD_CONFIGURATION),
    ((1,), (0,), "ok", LaunchFailure.BAD_CONFIGURATION),
    ((1,), (32, 32, 2), "ok", LaunchFailure.BAD_CONFIGURATION),
    ((1, 70000), (32,), "ok", LaunchFailure.BAD_CONFIGURATION),
    ((1,), (32,), "too few", LaunchFailure.BAD_ARGUMENTS),
    ((1,), (32,), "python int", LaunchFailure.BAD_ARGUMENTS),
    ((1,), (32,), "wrong width", LaunchFailure.BAD_ARGUMENTS),
    ((1,), (32,), "scalar for pointer", LaunchFailure.BAD_ARGUMENTS),
    ((1,), (32,), "freed buffer", LaunchFailure.BAD_ARGUMENTS),
    ((1,), (32,), "foreign buffer", LaunchFailure.BAD_ARGUMENTS),
])
def test_launch_errors_are_typed(device, module, grid, block, args, code):
    bufs = [device.alloc(64) for _ in range(3)]
    argv = {"ok": [*bufs, np.int32(16)], "too few": bufs, "python int": [*bufs, 16],
            "wrong width": [*bufs, np.int64(16)], "scalar for pointer": [np.int32(0), *bufs[1:], np.int32(16)],
            "freed buffer": [*bufs, np.int32(16)],
            "foreign buffer": [open_device("emu").alloc(64), *bufs[1:], np.int32(16)]}[args]
    if args == "freed buffer":
        device.free(bufs[0])
    with pytest.raises(LaunchError) as failed:
        device.launch(module, "vector_add", grid, block, argv)
    assert failed.value.code is code


def test_unknown_kernel(device, module):
    with pytest.raises(LaunchError) as failed:
        device.launch(module, "no_such_kernel", (1,), (1,), [])
    assert failed.value.code is LaunchFailure.UNKNOWN_KERNEL


def test_device_names_what_its_times_are(device):
    assert (device.kind, device.timing_label) in {("cuda", "measured"), ("emulated", "emulated")}
    assert device.name


def test_a_view_into_a_buffer_is_a_pointer_into_its_middle():
    from offloader.device import open_device

    device = open_device("emu")
    module = device.compile('extern "C" __global__ void fill(float *p, int n) '
                            '{ int i = threadIdx.x; if (i < n) p[i] = 7.0f; }')
    buf = device.alloc(16 * 4)
    device.copy_to_device(buf, np.zeros(16, dtype=np.float32))
    device.launch(module, "fill", (1, 1, 1), (4, 1, 1), [buf.at(8 * 4), np.int32(4)])
    out = np.empty(16, dtype=np.float32)
    device.copy_to_host(buf, out)
    assert out.tolist() == [0.0] * 8 + [7.0] * 4 + [0.0] * 4
    with pytest.raises(ValueError):
        buf.at(17 * 4)
