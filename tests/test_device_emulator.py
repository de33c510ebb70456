"""What only the emulated device does: execution orders, fault and overrun detection,
refusing CUDA features it cannot run, the compile cache and the ucontext fallback."""

import time
from pathlib import Path

import numpy as np
import pytest

from offloader.device import CompileError, CompileFailure, LaunchError, LaunchFailure
from offloader.device.emulated import EmulatedDevice, ExecutionOrder

KERNELS = Path(__file__).parent / "fixtures" / "kernels"
FAULTS = '''
extern "C" __global__ void wild_write(int victim, int *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i == victim)
        out[i + (1LL << 42)] = 1;
    else
        out[i] = i;
}

extern "C" __global__ void write_at(int *out, int index) { out[index] = 7; }

__device__ int deep(int n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    return n == 0 ? 0 : deep(n - 1) + pad[0];
}

extern "C" __global__ void overflow_stack(int *out) { out[threadIdx.x] = deep(1 << 30); }
'''


def tickets(order, grid, block, workers=1, source=None):
    dev = EmulatedDevice(order, workers=workers)
    module = dev.compile(source or (KERNELS / "orders.cu").read_text())
    n = int(np.prod(grid) * np.prod(block))
    counter, out = dev.alloc(4), dev.alloc(4 * n)
    dev.copy_to_device(counter, np.zeros(1, np.uint32))
    dev.launch(module, "tickets", grid, block, [counter, out])
    got = np.empty(n, np.uint32)
    dev.copy_to_host(out, got)
    return got


@pytest.mark.parametrize("grid, block", [((1,), (64,)), ((64,), (1,)), ((2, 3, 2), (4, 2, 2))])
def test_forward_and_reverse_orders(grid, block):
    """Blocks by linear index (x fastest), then threads of each block likewise."""
    n = int(np.prod(grid) * np.prod(block))
    assert tickets(ExecutionOrder("forward"), grid, block).tolist() == list(range(n))
    assert tickets(ExecutionOrder("reverse"), grid, block).tolist() == list(range(n))[::-1]


@pytest.mark.parametrize("grid, block", [((1,), (64,)), ((64,), (1,))])
def test_shuffle_order_is_a_seeded_permutation(grid, block):
    one, again, two = (tickets(ExecutionOrder("shuffle", s), grid, block) for s in (1, 1, 2))
    assert sorted(one.tolist()) == list(range(64))
    assert one.tolist() != list(range(64)) and one.tolist() != list(range(64))[::-1]
    np.testing.assert_array_equal(one, again)
    assert one.tolist() != two.tolist()


@pytest.mark.parametrize("order", [ExecutionOrder("forward"), ExecutionOrder("reverse"),
                                   ExecutionOrder("shuffle", 5)], ids=str)
def test_barrier_holds_in_every_order_on_several_workers(order):
    dev = EmulatedDevice(order, workers=2)
    module = dev.compile((KERNELS / "orders.cu").read_text())
    data = np.arange(128 * 9, dtype=np.int32)
    src, out = dev.alloc(data.nbytes), dev.alloc(data.nbytes)
    dev.copy_to_device(src, data)
    dev.launch(module, "rotate", (9,), (128,), [src, out])
    got = np.empty_like(data)
    dev.copy_to_host(out, got)
    np.testing.assert_array_equal(got, np.roll(data.reshape(9, 128), -1, axis=1).ravel())


@pytest.fixture(scope="module")
def faults():
    dev = EmulatedDevice(workers=2)
    return dev, dev.compile(FAULTS)


def test_a_fault_in_kernel_code_is_a_launch_error_and_the_process_goes_on(faults):
    dev, module = faults
    out = dev.alloc(4 * 512)
    with pytest.raises(LaunchError) as failed:
        dev.launch(module, "wild_write", (4,), (128,), [np.int32(300), out])
    assert failed.value.code is LaunchFailure.ILLEGAL_ADDRESS
    assert "block (2, 0, 0) thread (44, 0, 0)" in failed.value.message
    dev.launch(module, "wild_write", (4,), (128,), [np.int32(-1), out])
    got = np.empty(512, np.int32)
    dev.copy_to_host(out, got)
    assert got.tolist() == list(range(512))


def test_a_stack_overflow_in_a_fiber_is_a_launch_error(faults):
    dev, module = faults
    dev.order = ExecutionOrder("shuffle", 1)
    try:
        with pytest.raises(LaunchError) as failed:
            dev.launch(module, "overflow_stack", (1,), (4,), [dev.alloc(16)])
    finally:
        dev.order = ExecutionOrder()
    assert failed.value.code is LaunchFailure.ILLEGAL_ADDRESS


@pytest.mark.parametrize("index, where", [(16, "4 bytes past its end"), (-1, "4 bytes before its start")])
def test_writes_just_outside_a_buffer_are_caught(faults, index, where):
    dev, module = faults
    buf = dev.alloc(16 * 4)
    with pytest.raises(LaunchError) as failed:
        dev.launch(module, "write_at", (1,), (1,), [buf, np.int32(index)])
    assert failed.value.code is LaunchFailure.ILLEGAL_ADDRESS and where in failed.value.message
    dev.launch(module, "write_at", (1,), (1,), [buf, np.int32(15)])  # guards were restored


@pytest.mark.parametrize("code, feature", [
    ("int v = __shfl_down_sync(0xffffffff, x[0], 1);", "warp shuffles"),
    ("__syncwarp();", "__syncwarp"),
    ("unsigned m = __ballot_sync(0xffffffff, x[0] > 0);", "warp votes"),
    ("extern __shared__ int dyn[];", "dynamic shared memory"),
])
def test_features_the_emulator_lacks_are_refused_by_name(code, feature):
    source = f'extern "C" __global__ void k(int *x)\n{{\n    {code}\n}}\n'
    with pytest.raises(CompileError) as refused:
        EmulatedDevice().compile(source)
    assert refused.value.code is CompileFailure.UNSUPPORTED
    assert refused.value.message.startswith("line 3:") and feature in refused.value.message


def test_dynamic_shared_memory_at_launch_is_refused():
    dev = EmulatedDevice()
    module = dev.compile((KERNELS / "contract.cu").read_text())
    with pytest.raises(LaunchError) as refused:
        dev.launch(module, "nothing", (1,), (1,), [], shared_bytes=1024)
    assert refused.value.code is LaunchFailure.BAD_CONFIGURATION


def test_a_barrier_the_text_scan_cannot_see_is_an_error_not_a_wrong_result():
    source = ('#define JOIN(a, b) a##b\n'
              'extern "C" __global__ void k(int *x) { x[threadIdx.x] = 1; JOIN(__sync, threads)(); }\n')
    dev = EmulatedDevice()
    module = dev.compile(source)
    with pytest.raises(LaunchError) as failed:
        dev.launch(module, "k", (1,), (2,), [dev.alloc(8)])
    assert failed.value.code is LaunchFailure.LAUNCH_FAILED


def test_compiled_libraries_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLOAD_EMU_CACHE", str(tmp_path))
    source = 'extern "C" __global__ void k(int *x) { x[0] = 42; }\n'
    EmulatedDevice().compile(source)
    (library,) = tmp_path.glob("*.so")
    built = library.stat().st_mtime_ns
    EmulatedDevice().compile(source)
    assert [p.name for p in tmp_path.glob("*.so")] == [library.name]
    assert library.stat().st_mtime_ns == built and library.with_suffix(".log").exists()
    EmulatedDevice().compile(source, ["-DUNUSED=1"])
    assert len(list(tmp_path.glob("*.so"))) == 2


@pytest.mark.parametrize("order", [ExecutionOrder("forward"), ExecutionOrder("reverse"),
                                   ExecutionOrder("shuffle", 3)], ids=str)
def test_ucontext_fibers_give_the_same_results(order):
    dev = EmulatedDevice(order)
    module = dev.compile((KERNELS / "contract.cu").read_text(), ["-DCUDA_EMU_UCONTEXT"])
    x = (np.arange(256 * 5) % 5).astype(np.float32)
    xs, partial = dev.alloc(x.nbytes), dev.alloc(5 * 4)
    dev.copy_to_device(xs, x)
    dev.launch(module, "block_sum", (5,), (256,), [xs, partial, np.int32(x.size)])
    got = np.empty(5, np.float32)
    dev.copy_to_host(partial, got)
    np.testing.assert_array_equal(got, x.reshape(5, 256).sum(axis=1))


def test_launch_time_is_the_wall_time_of_the_run():
    dev = EmulatedDevice()
    module = dev.compile((KERNELS / "contract.cu").read_text())
    start = time.perf_counter()
    seconds = dev.launch(module, "nothing", (64,), (256,), [])
    assert 0 < seconds <= time.perf_counter() - start
