"""The CuPy device (the GPU where pycuda is missing): how a device is chosen and that CuPy
stays out of imports, here; on a GPU (marker `gpu`) what the contract suite
(test_device_contract.py, which runs on CuPy too) does not cover: the context the runtime's C
side copies in, a view on the GPU, a fault, and `cuda` falling back from pycuda to CuPy."""

import ctypes
import subprocess
import sys

import numpy as np
import pytest

from offloader.device import LaunchFailure, choose_kind, gpu_library, open_device
from offloader.errors import UserError


def _without(monkeypatch, *modules):
    """Make `import` of each module fail, as when it is not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_the_cupy_device_module_and_the_emulator_load_no_gpu_library():
    code = ("import sys\n"
            "import offloader.device, offloader.device.cupy_device\n"
            "offloader.device.open_device('emu')\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('cupy', 'cupy_backends', 'pycuda')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_gpu_library_can_be_narrowed_to_one(monkeypatch):
    _without(monkeypatch, "pycuda", "pycuda.driver", "cupy")
    monkeypatch.setenv("OFFLOAD_GPU_LIBRARY", "cupy")
    library, why = gpu_library()
    assert library is None and "CuPy is not installed" in why and "pycuda" not in why
    monkeypatch.setenv("OFFLOAD_GPU_LIBRARY", "opencl")
    assert gpu_library() == (None, "$OFFLOAD_GPU_LIBRARY is 'opencl': it must be pycuda or cupy")


def test_without_pycuda_and_cupy_auto_is_the_emulator_and_says_why(monkeypatch):
    _without(monkeypatch, "pycuda", "pycuda.driver", "cupy")
    kind, why = choose_kind("auto")
    assert kind == "emu"
    assert why.startswith("emulated: ") and "pycuda is not installed" in why and "CuPy is not installed" in why
    assert gpu_library()[0] is None
    assert open_device("auto").kind == "emulated"
    with pytest.raises(UserError, match="cuda was asked for, but no GPU library works"):
        choose_kind("cuda")
    with pytest.raises(RuntimeError, match="cuda was asked for, but no GPU library works: .*CuPy is not installed"):
        open_device("cuda")


@pytest.fixture(scope="module")
def gpu():
    from offloader.device.cupy_device import CupyDevice, cupy_available

    ok, why = cupy_available()
    if not ok:
        pytest.skip(why)
    device = CupyDevice()
    yield device
    device.close()


@pytest.mark.gpu
def test_the_runtime_copies_back_in_the_current_context(gpu):
    """What hostprog/residency.c does: cuCtxGetCurrent, then cuMemcpyDtoH_v2 from address()."""
    driver = ctypes.CDLL("libcuda.so.1")
    context = ctypes.c_void_p()
    assert driver.cuCtxGetCurrent(ctypes.byref(context)) == 0 and context.value
    data = np.arange(64, dtype=np.int32)
    buf = gpu.alloc(data.nbytes)
    gpu.copy_to_device(buf, data)
    kind, address = gpu.address(buf.at(16))
    out = np.zeros(60, dtype=np.int32)
    driver.cuMemcpyDtoH_v2.argtypes = (ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t)
    assert kind == 1 and driver.cuMemcpyDtoH_v2(out.ctypes.data, address, out.nbytes) == 0
    np.testing.assert_array_equal(out, data[4:])


@pytest.mark.gpu
def test_a_view_is_a_pointer_into_the_middle_of_a_gpu_buffer(gpu):
    module = gpu.compile('extern "C" __global__ void fill(float *p, int n) '
                         '{ int i = threadIdx.x; if (i < n) p[i] = 7.0f; }')
    buf = gpu.alloc(16 * 4)
    gpu.copy_to_device(buf, np.zeros(16, dtype=np.float32))
    gpu.launch(module, "fill", (1,), (4,), [buf.at(8 * 4), np.int32(4)])
    gpu.copy_to_device(buf.at(15 * 4), np.float32([5.0]))
    out = np.empty(16, dtype=np.float32)
    gpu.copy_to_host(buf, out)
    assert out.tolist() == [0.0] * 8 + [7.0] * 4 + [0.0] * 3 + [5.0]
    tail = np.empty(2, dtype=np.float32)
    gpu.copy_to_host(buf.at(10 * 4), tail)
    assert tail.tolist() == [7.0, 7.0]


@pytest.mark.gpu
def test_a_fault_is_a_typed_illegal_address(gpu):
    """In a child process: a fault leaves the primary context unusable for the rest of it."""
    code = ("from offloader.device import LaunchError\n"
            "from offloader.device.cupy_device import CupyDevice\n"
            "d = CupyDevice()\n"
            "m = d.compile('extern \"C\" __global__ void wild(int *p) { p[-(1LL << 40)] = 1; }')\n"
            "try:\n"
            "    d.launch(m, 'wild', (1,), (1,), [d.alloc(4)])\n"
            "except LaunchError as e:\n"
            "    print(e.code.value, e.device_code)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[:1] == [LaunchFailure.ILLEGAL_ADDRESS.value], done.stdout + done.stderr


@pytest.mark.gpu
def test_cuda_without_pycuda_runs_on_cupy(gpu, monkeypatch):
    _without(monkeypatch, "pycuda", "pycuda.driver")
    kind, why = choose_kind("auto")
    assert (kind, gpu_library()[0]) == ("cuda", "cupy") and why.startswith("cupy found")
    device = open_device("cuda")
    assert "CuPy" in device.name and (device.kind, device.timing_label) == ("cuda", "measured")
