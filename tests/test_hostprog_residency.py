"""The C residency (hostprog/residency.c) on its own: real page protection, real faults, host
memory standing in for the device (as on the emulator). What it keeps is byte intervals, so a
call's work follows the runs it is given; these tests check what it copies, when host code
faults, and that it never returns bytes the device does not hold."""

import ctypes
import mmap
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from offloader.hostprog.build import runtime_file
from offloader.runtime.residency import FaultStats, Traffic, _Bound

PAGE = mmap.PAGESIZE


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    path = tmp_path_factory.mktemp("residency") / "libresidency.so"
    subprocess.run(["gcc", "-O2", "-std=gnu11", "-fPIC", "-shared", "-o", str(path), runtime_file("residency.c"),
                    runtime_file("runtime.c")], check=True)
    return str(path)


@pytest.fixture(scope="module")
def c(library):
    lib = ctypes.CDLL(library)
    bound = _Bound(lib)
    bound.shape = lib.__offload_residency_shape
    bound.shape.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_longlong), ctypes.POINTER(ctypes.c_longlong)]
    bound.host_access = lib.__offload_host_access
    bound.host_access.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert bound.copy_kind(0)
    return bound


class Copy:
    """A watched host block and its device copy (host memory), as the runtime registers one."""

    def __init__(self, c, pages: int, fill: int = 7, watch: bool = True):
        self.c, self.size = c, pages * PAGE
        self.map = mmap.mmap(-1, self.size)
        self.host = np.frombuffer(self.map, dtype=np.uint8)
        self.host[:] = (np.arange(self.size) * fill % 251).astype(np.uint8)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        self.device = np.full(self.size, 0xEE, dtype=np.uint8)          # garbage until copied in
        self.entry = c.manage(self.base, self.size, self.device.ctypes.data, int(watch), 1)
        assert self.entry >= 0

    def need(self, *runs):
        return self._call(self.c.need, runs)

    def wrote(self, *runs, value=None):
        """The 'kernel' writes `value` into the device's bytes of `runs` (if given)."""
        for lo, hi in runs:
            if value is not None:
                self.device[lo:hi] = value
        return self._call(self.c.wrote, runs)

    def _call(self, function, runs):
        traffic = Traffic()
        pairs = np.array(runs, dtype=np.int64).reshape(-1, 2)
        assert function(self.entry, pairs.ctypes.data, len(pairs), ctypes.byref(traffic))
        return traffic

    def stats(self) -> FaultStats:
        stats = FaultStats()
        self.c.stats(self.entry, ctypes.byref(stats))
        return stats

    def shape(self):
        valid, stale = ctypes.c_longlong(), ctypes.c_longlong()
        eager = self.c.shape(self.entry, ctypes.byref(valid), ctypes.byref(stale))
        return valid.value, stale.value, eager

    def release(self):
        assert self.c.release(self.entry, 0, ctypes.byref(Traffic()))


@pytest.fixture
def copy(c):
    made = []

    def make(*args, **kwargs):
        made.append(Copy(c, *args, **kwargs))
        return made[-1]
    yield make
    for one in made:
        one.release()


def test_only_missing_bytes_go_to_the_device_and_a_repeated_need_copies_nothing(copy):
    a = copy(4)
    first = a.need((0, PAGE))
    assert (first.h2d_bytes, first.h2d_copies) == (PAGE, 1)
    assert np.array_equal(a.device[:PAGE], a.host[:PAGE])
    assert a.need((0, 2 * PAGE)).h2d_bytes == PAGE                      # only the second page
    again = a.need((100, 200), (0, 2 * PAGE))
    assert (again.h2d_bytes, again.h2d_copies) == (0, 0)
    assert a.shape()[:2] == (1, 0)                                       # one valid interval


def test_runs_of_one_width_at_one_pitch_go_as_one_copy(copy):
    a = copy(4)
    runs = [(64 * k, 64 * k + 8) for k in range(100)]
    done = a.need(*runs)
    assert (done.h2d_bytes, done.h2d_copies) == (800, 1)
    assert all(np.array_equal(a.device[lo:hi], a.host[lo:hi]) for lo, hi in runs)
    assert a.device[8] == 0xEE                                           # and nothing between them


def test_a_partial_write_never_brings_device_garbage_back(copy):
    a = copy(8)
    before = a.host.copy()
    runs = [(k, k + 8) for k in range(16, a.size - 64, 32)]
    a.wrote(*runs, value=0x11)
    seen = a.host.copy()                                                 # the host reads all of it
    written = np.zeros(a.size, dtype=bool)
    for lo, hi in runs:
        written[lo:hi] = True
    assert (seen[written] == 0x11).all()
    assert np.array_equal(seen[~written], before[~written])             # never the device's 0xEE
    assert a.stats().copied_back == written.sum()


def test_written_rows_join_into_one_stale_interval_where_the_device_holds_the_gaps(copy):
    width, rows = 1024, 32
    interior = [(r * width + 8, (r + 1) * width - 8) for r in range(1, rows - 1)]
    held = copy(width * rows // PAGE)
    held.need((0, held.size))
    held.wrote(*interior, value=3)
    assert held.shape()[:2] == (1, 1)                                    # not one per row
    not_held = copy(width * rows // PAGE)
    first_row = not_held.host[:width].copy()
    not_held.wrote(*interior, value=3)
    assert not_held.shape()[1] == rows - 2                               # the gaps hold garbage
    assert np.array_equal(not_held.host[:width], first_row)             # the host's first row is its own


def test_a_sequential_sweep_faults_a_logarithmic_number_of_times(copy):
    pages = 256
    a = copy(pages)
    a.wrote((0, a.size), value=5)
    assert int(a.host[::PAGE].sum()) == 5 * pages                        # one read per page, in order
    stats = a.stats()
    assert stats.copied_back == a.size
    assert stats.faults <= 10                                            # windows of 1, 2, 4, ... pages


def test_a_read_then_write_sweep_faults_once_per_window(copy):
    pages = 256
    a = copy(pages)
    a.wrote((0, a.size), value=5)
    for page in range(pages):
        a.host[page * PAGE] = a.host[page * PAGE] + 1                   # read, then write
    assert a.stats().faults <= 12
    assert (a.host[::PAGE] == 6).all()
    refreshed = a.need((0, a.size))                                      # the host's writes go back in
    assert refreshed.h2d_bytes >= pages and (a.device[::PAGE] == 6).all()


def test_scattered_host_access_switches_to_eager_copy_back(copy):
    pages = 1024
    a = copy(pages)
    a.wrote((0, a.size), value=1)
    for page in range(pages - 1, 0, -8):                                # one byte of every 8th page, backwards
        assert a.host[page * PAGE] == 1
    assert a.stats().faults >= 64
    back = a.wrote((0, a.size), value=2)                                # the next launch copies back at once
    assert a.shape()[2] == 1 and back.d2h_bytes == a.size and back.d2h_copies == 1
    faults = a.stats().faults
    assert (a.host[::8 * PAGE] == 2).all()
    assert a.stats().faults == faults                                    # and host reads no longer fault


def test_a_host_write_drops_the_device_copy_of_that_page_only(copy):
    a = copy(8)
    a.need((0, a.size))
    a.host[3 * PAGE + 5] = 99                                            # a write fault on a read-only page
    assert a.stats().faults == 1
    again = a.need((0, a.size))
    assert again.h2d_bytes == PAGE and a.device[3 * PAGE + 5] == 99


def test_io_settles_its_buffer_without_faults(copy, c):
    a = copy(4)
    a.wrote((0, a.size), value=9)
    c.host_access(a.base + PAGE, PAGE, 0)                                # what fwrite() does first
    assert a.stats().copied_back == PAGE and a.stats().faults == 0
    assert a.host[PAGE] == 9 and a.stats().faults == 0                   # readable now


def test_the_steady_state_copies_nothing_and_keeps_its_intervals(copy):
    a = copy(64)
    a.need((0, a.size))
    a.wrote((8, a.size - 8))
    total = Traffic()
    for _ in range(1000):
        step = a.need((0, a.size))
        step2 = a.wrote((8, a.size - 8))
        total.h2d_copies += step.h2d_copies + step2.h2d_copies
        total.d2h_copies += step.d2h_copies + step2.d2h_copies
    assert (total.h2d_copies, total.d2h_copies) == (0, 0)
    assert a.shape() == (1, 1, 0) and a.stats().faults == 0


def test_a_fault_outside_managed_memory_is_still_a_crash(library):
    script = textwrap.dedent(f"""
        import ctypes, mmap
        import numpy as np
        from offloader.runtime.residency import Traffic, _Bound
        c = _Bound(ctypes.CDLL({library!r}))
        c.copy_kind(0)
        host = mmap.mmap(-1, 4096)
        device = np.zeros(4096, np.uint8)
        entry = c.manage(ctypes.addressof(ctypes.c_char.from_buffer(host)), 4096, device.ctypes.data, 1, 1)
        ctypes.string_at(8, 1)                  # not ours: the fault must reach the old handler
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode < 0, done.stderr.decode()
