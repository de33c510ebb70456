"""The sandbox all handling of user code in the service goes through, preprocessing included:
otherwise `#include "/etc/shadow"` echoes the file back in a compiler diagnostic (issue 7).

A run is a chain of programs, each exec'ing the next, outside in:
1. `unshare -m` (root), whose script first joins the run's cgroup (cgroups.py: CPU time, memory,
   process count of the whole tree), then bind-mounts the job folder and the read-only paths into
   a staging folder uid 65534 can reach, in a mount namespace of its own that dies with the run
   (the service's data folder, or a pyenv under /root, are not reachable by that uid).
2. `prlimit`: no core dumps, no file over disk_bytes, a per-process CPU-time backstop.
3. `setpriv`: uid and gid 65534 on the host, no capabilities, no new privileges. bwrap run by
   root with --unshare-user would map the sandbox's uid 65534 to uid 0 outside, and the kernel
   would let the job read root-owned 0600 files in what is bound, use ext4's root-reserved blocks
   and pass owner checks made against the global root uid.
4. `bwrap`, unprivileged: new user (no nested ones), mount, pid, network, ipc, uts and cgroup
   namespaces, a new session, dies with its parent; the system read-only, /etc from an
   allow-list, /tmp and /dev/shm size-capped tmpfs, the job folder the only writable host path.
5. `bash`: tells the monitor that setup succeeded (a byte on a pipe), closes it, execs argv.

Limits: the kernel enforces memory and process count (the cgroup's memory and pids limits).
The monitor checks CPU time (the cgroup's), wall time, output and disk every POLL and kills the
whole tree; RLIMIT_CPU per process and RLIMIT_FSIZE per file back it up.

Disk: the job folder, /tmp and /dev/shm together hold at most disk_bytes. The two tmpfs have
that size (a hard cap; their pages also count against memory_bytes). The job folder is
measured every poll and the run stopped when the total goes over: it has to outlive the run on
disk (a tuning study resumes after a restart) and be read by the service without mounting
anything, so it is not a size-capped file system of its own. A writer overshoots by what it
writes within one poll (tens of MB at a few GB/s).

Afterwards the job folder holds whatever the job made (symlinks, FIFOs, huge files): read it
with safefs. Two runs must not share a job folder at the same time.
"""

from __future__ import annotations

import functools
import glob
import json
import math
import os
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from . import cgroups

NOBODY = 65534
POLL = 0.02                    # seconds between checks of the limits
TOOLS = ("bwrap", "unshare", "mount", "prlimit", "setpriv")
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
FORBIDDEN_JOB_DIRS = SYSTEM + ("/etc", "/proc", "/sys", "/dev", "/boot", "/run")
ETC_FROM_HOST = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
                 "os-release", "fonts")
ETC_WRITTEN = {
    "passwd": f"nobody:x:{NOBODY}:{NOBODY}:nobody:/tmp:/usr/sbin/nologin\n",
    "group": f"nogroup:x:{NOBODY}:\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
}
GPU_NODES = ("/dev/nvidia*", "/dev/dri")


@dataclass(frozen=True)
class Limits:
    """What one run may use. disk_bytes is for the job folder, /tmp and /dev/shm together."""
    cpu_seconds: float = 1800.0      # CPU time of the whole process tree
    wall_seconds: float = 1800.0
    memory_bytes: int = 4 << 30
    pids: int = 128                  # processes and threads in the tree
    disk_bytes: int = 1 << 30
    output_bytes: int = 1 << 20      # kept of stdout and of stderr each; more stops the run


@dataclass(frozen=True)
class SandboxResult:
    """returncode: the program's exit status, negative for a signal as in subprocess; None when
    the sandbox stopped the run or could not start it. failure: "" or why the run failed:
    timeout, cpu_limit, memory_limit, pids_limit, disk_limit, output_limit, crash (killed by a
    signal no limit explains), sandbox_unavailable (stderr says why)."""
    returncode: int | None
    stdout: str
    stderr: str
    failure: str
    seconds: float


@functools.cache
def sandbox_available() -> tuple[bool, str]:
    """Whether runs can be sandboxed here (checked once per process, with a trial run), and why."""
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=HOST_PATH)]
    if missing:
        return False, (f"missing {', '.join(missing)}: apt-get install bubblewrap util-linux")
    if os.geteuid() != 0:
        return False, "the sandbox runs as root: it makes cgroups and mounts for each run"
    try:
        where = cgroups.describe()
    except cgroups.CgroupError as exc:
        return False, str(exc)
    with tempfile.TemporaryDirectory(prefix="offload-sandbox-check-") as tmp:
        trial = _run(["/bin/true"], Path(tmp), Limits(wall_seconds=30), False, {}, ())
    if trial.failure or trial.returncode != 0:
        return False, (f"a trial run failed ({trial.failure or trial.returncode}): "
                       f"{trial.stderr.strip()}")
    return True, f"bubblewrap as uid {NOBODY}, {where}"


def run_sandboxed(argv: list[str], job_dir: Path, limits: Limits = Limits(), *, gpu: bool = False,
                  env: Mapping[str, str] | None = None,
                  readonly: Sequence[Path] = ()) -> SandboxResult:
    """Run argv in the sandbox, in job_dir (its only writable host folder, bound at the same path).

    readonly paths are bound read-only at the same path; a virtual environment among them brings
    its base interpreter. gpu binds the NVIDIA and DRI device nodes. The environment is PATH,
    HOME=/tmp, TMPDIR, LANG=C.UTF-8, then env. Afterwards everything in job_dir belongs to the
    caller's uid again. Raises ValueError for a job_dir or readonly path that would expose more
    than the job's own folder.
    """
    available, why = sandbox_available()
    if not available:
        return SandboxResult(None, "", why, "sandbox_unavailable", 0.0)
    return _run(list(argv), Path(job_dir), limits, gpu, dict(env or {}), readonly)


def _run(argv: list[str], job_dir: Path, limits: Limits, gpu: bool, env: dict[str, str],
         readonly: Sequence[Path]) -> SandboxResult:
    job_dir, readonly = _checked(argv, job_dir, readonly)
    start = time.monotonic()
    try:
        with cgroups.run_cgroup(limits.memory_bytes, limits.pids) as group, \
                _staged([*readonly, job_dir]) as stage, _lent(job_dir):
            return _Run(argv, job_dir, readonly, stage, group, limits, gpu, env, start).wait()
    except cgroups.CgroupError as exc:
        return SandboxResult(None, "", str(exc), "sandbox_unavailable", time.monotonic() - start)


class _Run:
    """One launched chain, watched until it ends: output, status, limits."""

    def __init__(self, argv: list[str], job_dir: Path, readonly: list[Path], stage: Path,
                 group: cgroups.RunCgroup, limits: Limits, gpu: bool, env: dict[str, str],
                 start: float):
        self.group, self.limits, self.job_dir, self.start = group, limits, job_dir, start
        self.out = {"stdout": bytearray(), "stderr": bytearray()}
        self.status = b""
        self.child_pid = 0                 # bwrap's pid 1 of the sandbox, seen from the host
        self.ready = False
        self.tmpfs: list[int] = []         # O_PATH fds on the sandbox's /tmp and /dev/shm
        self.reason = ""                   # the limit the monitor stopped the run for
        self.disk_full = False
        self.next_disk = 0.0
        status_r, status_w = os.pipe()
        ready_r, ready_w = os.pipe()
        sandbox = _bwrap(job_dir, readonly, stage, limits, gpu, env, status_w)
        # bash, not sh: dash cannot name file descriptors above 9
        inner = ["/bin/bash", "-c", f'printf x >&{ready_w} && exec "$@" {ready_w}>&-', "sh", *argv]
        try:
            self.proc = subprocess.Popen(
                _launcher(group, readonly + [job_dir], stage, limits) + sandbox + inner,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(status_w, ready_w), env={"PATH": HOST_PATH}, cwd="/")
        except BaseException:
            os.close(status_r)
            os.close(ready_r)
            raise
        finally:
            os.close(status_w)
            os.close(ready_w)
        self.selector = selectors.DefaultSelector()
        for fd, what in ((self.proc.stdout.fileno(), "stdout"),
                         (self.proc.stderr.fileno(), "stderr"),
                         (status_r, "status"), (ready_r, "ready")):
            self.selector.register(fd, selectors.EVENT_READ, what)
        self.owned = [status_r, ready_r]

    def wait(self) -> SandboxResult:
        try:
            self._watch()
            usage = self.group.usage()
            self._measure_disk()
        finally:
            self._stop()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()
            for fd in self.owned + self.tmpfs:
                os.close(fd)
            self.selector.close()
        returncode, failure = self._outcome(usage)
        return SandboxResult(returncode, self.out["stdout"].decode(errors="replace"),
                             self.out["stderr"].decode(errors="replace"), failure,
                             time.monotonic() - self.start)

    def _watch(self) -> None:
        ended = None
        while self.selector.get_map():
            for key, _ in self.selector.select(timeout=POLL):
                data = os.read(key.fd, 65536)
                if data:
                    self._take(key.data, data)
                else:
                    self.selector.unregister(key.fd)
            if not self.reason:
                self.reason = self._over_limit()
                if self.reason:
                    self._stop()
            if ended is None and self.proc.poll() is not None:
                ended = time.monotonic()
            if ended is not None and time.monotonic() - ended > 1.0:
                break                      # nothing can hold the pipes once the tree is gone
        self.proc.wait()

    def _take(self, what: str, data: bytes) -> None:
        if what in self.out:
            kept = self.out[what]
            room = self.limits.output_bytes - len(kept)
            kept += data[:room]
            if len(data) > room and not self.reason:
                self.reason = "output_limit"
                self._stop()
        elif what == "status":
            *lines, rest = (self.status + data).split(b"\n")      # one JSON document a line
            self.status = rest
            for line in lines:
                self.child_pid = json.loads(line).get("child-pid", self.child_pid)
        else:
            self.ready = True
        if self.ready and self.child_pid and not self.tmpfs:
            self.tmpfs = [fd for fd in map(self._open_in_sandbox, ("tmp", "dev/shm")) if fd >= 0]

    def _open_in_sandbox(self, path: str) -> int:
        """An fd on a tmpfs of the sandbox: it can be measured even after the run ended."""
        try:
            return os.open(f"/proc/{self.child_pid}/root/{path}",
                           os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return -1                      # the run already ended

    def _over_limit(self) -> str:
        now = time.monotonic()
        if now - self.start > self.limits.wall_seconds:
            return "timeout"
        usage = self.group.usage()
        if usage.oom_kills:
            return "memory_limit"
        if usage.pids_max_hits:
            return "pids_limit"
        if usage.cpu_seconds > self.limits.cpu_seconds:
            return "cpu_limit"
        if now >= self.next_disk:
            self._measure_disk()
            self.next_disk = time.monotonic() + max(POLL, 50 * (time.monotonic() - now))
            if self.disk_full:
                return "disk_limit"
        return ""

    def _measure_disk(self) -> None:
        used = _tree_bytes(self.job_dir)
        for fd in self.tmpfs:
            fs = os.fstatvfs(fd)
            used += (fs.f_blocks - fs.f_bfree) * fs.f_frsize
            self.disk_full |= fs.f_bavail == 0
        self.disk_full |= used >= self.limits.disk_bytes

    def _stop(self) -> None:
        """Kill the tree: bwrap first (its pid 1 then takes the pid namespace down), then any
        process left in the cgroup."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.group.kill()

    def _outcome(self, usage: cgroups.Usage) -> tuple[int | None, str]:
        if self.reason:
            return None, self.reason
        code = self.proc.returncode        # bwrap passes on the exit status, 128 + n for signal n
        if 128 < code <= 128 + 64:
            code = 128 - code
        if usage.oom_kills:
            limit = "memory_limit"
        elif usage.pids_max_hits:
            limit = "pids_limit"
        elif usage.cpu_seconds >= self.limits.cpu_seconds:
            limit = "cpu_limit"
        elif self.disk_full or code == -signal.SIGXFSZ:
            limit = "disk_limit"
        else:
            limit = ""
        if not self.ready:                 # it ended before the job's program started
            return None, limit or "sandbox_unavailable"
        if code == 0:
            return 0, ""
        return code, limit or ("crash" if code < 0 else "")


def _launcher(group: cgroups.RunCgroup, sources: list[Path], stage: Path,
              limits: Limits) -> list[str]:
    """Root's part of the chain: join the cgroup, stage the binds, set rlimits, drop to nobody."""
    script = ["set -e"]
    script += [f"echo $$ > {shlex.quote(str(f))}" for f in group.procs_files]
    script += [f"mount --rbind {shlex.quote(str(src))} {shlex.quote(str(dst))}"
               for src, dst in _bind_pairs(sources, stage)]
    script.append('exec "$@"')
    cpu = math.ceil(limits.cpu_seconds) + 1
    return [_tool("unshare"), "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", "\n".join(script), "launcher",
            _tool("prlimit"), "--core=0", f"--fsize={limits.disk_bytes}", f"--cpu={cpu}:{cpu + 1}",
            "--", _tool("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _bwrap(job_dir: Path, readonly: list[Path], stage: Path, limits: Limits, gpu: bool,
           env: dict[str, str], status_fd: int) -> list[str]:
    """bwrap's options: namespaces, the file system view, the environment."""
    args = [_tool("bwrap"), "--unshare-all", "--unshare-user", "--disable-userns",
            "--uid", str(NOBODY), "--gid", str(NOBODY), "--hostname", "sandbox",
            "--die-with-parent", "--new-session", "--json-status-fd", str(status_fd),
            "--size", str(limits.disk_bytes), "--tmpfs", "/tmp"]
    for path in SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--dir", "/etc"]
    for name in ETC_FROM_HOST:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name in ETC_WRITTEN:
        args += ["--ro-bind", f"{stage}/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.disk_bytes),
             "--tmpfs", "/dev/shm"]
    if gpu:
        for node in sorted(n for pattern in GPU_NODES for n in glob.glob(pattern)):
            args += ["--dev-bind", node, node]
    for i, path in enumerate(readonly):
        args += ["--ro-bind", f"{stage}/{i}", str(path)]
    args += ["--bind", f"{stage}/{len(readonly)}", str(job_dir), "--chdir", str(job_dir),
             "--remount-ro", "/dev", "--remount-ro", "/", "--clearenv"]
    environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
                   "LANG": "C.UTF-8", **env}
    for key, value in environment.items():
        args += ["--setenv", key, value]
    return args + ["--"]


def _checked(argv: list[str], job_dir: Path,
             readonly: Sequence[Path]) -> tuple[Path, list[Path]]:
    """Absolute paths; refuses what would bind more than this job's folder or hand the system to
    uid 65534 (job_dir's files are chowned to it for the run)."""
    job_dir = Path(os.path.abspath(job_dir))
    if not argv:
        raise ValueError("nothing to run: argv is empty")
    if not job_dir.is_dir():
        raise ValueError(f"job_dir {job_dir} is not a folder")
    real_job = job_dir.resolve()
    if real_job == Path("/") or any(real_job.is_relative_to(p) for p in FORBIDDEN_JOB_DIRS):
        raise ValueError(f"job_dir {job_dir} is a system folder")
    paths = []
    for path in readonly:
        path = Path(os.path.abspath(path))
        if not path.exists():
            raise ValueError(f"read-only path {path} does not exist")
        real = path.resolve()
        if real_job.is_relative_to(real) or real.is_relative_to(real_job):
            raise ValueError(f"job_dir {job_dir} and read-only path {path} overlap: other jobs' "
                             f"folders or the service's files would be reachable or chowned")
        paths += [path, *_base_interpreter(path)]
    return job_dir, list(dict.fromkeys(paths))


def _base_interpreter(path: Path) -> list[Path]:
    """A virtual environment's python is a symlink into its base installation: bind that too."""
    config = path / "pyvenv.cfg"
    if not config.is_file():
        return []
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            prefix = Path(value.strip()).resolve().parent
            if not any(prefix.is_relative_to(p) for p in SYSTEM):
                return [prefix]
    return []


def _bind_pairs(sources: list[Path], stage: Path) -> list[tuple[Path, Path]]:
    """(source, mount point) for each bind. A read-only folder uid 65534 may not enter itself
    (a checkout in a 0700 `mktemp -d`) is lifted: its entries are bound one by one into a 0755
    stage folder, so its own mode never stands in the way and nothing of the user's is chmodded.
    Symlinks among the entries are copied as links. The last source, the job folder, is lent
    to uid 65534 instead (`_lent`) and always bound whole."""
    pairs = []
    for i, source in enumerate(sources):
        target = stage / str(i)
        readonly = i < len(sources) - 1
        if readonly and source.is_dir() and source.stat().st_mode & 0o005 != 0o005:
            pairs += [(entry, target / entry.name) for entry in sorted(source.iterdir()) if not entry.is_symlink()]
        else:
            pairs.append((source, target))
    return pairs


def _lifted_links(sources: list[Path], stage: Path) -> None:
    """The symlinks of lifted folders, recreated in the stage (a bind cannot carry a link)."""
    for i, source in enumerate(sources[:-1]):
        if source.is_dir() and source.stat().st_mode & 0o005 != 0o005:
            for entry in source.iterdir():
                if entry.is_symlink():
                    (stage / str(i) / entry.name).symlink_to(os.readlink(entry))


@contextmanager
def _staged(sources: list[Path]) -> Iterator[Path]:
    """A folder uid 65534 can reach, with a mount point per source and the written /etc files.
    The binds themselves exist only in the run's own mount namespace."""
    stage = Path(tempfile.mkdtemp(prefix=f"offload-sandbox-{os.getpid()}-"))
    try:
        stage.chmod(0o711)
        (stage / "etc").mkdir(mode=0o755)
        for name, text in ETC_WRITTEN.items():
            (stage / "etc" / name).write_text(text)
            (stage / "etc" / name).chmod(0o644)
        for i, source in enumerate(sources):
            if source.is_dir():
                (stage / str(i)).mkdir(mode=0o755)
            else:
                (stage / str(i)).touch()
        for source, target in _bind_pairs(sources, stage):
            if target.parent != stage:               # an entry of a lifted folder
                target.mkdir() if source.is_dir() else target.touch()
        _lifted_links(sources, stage)
        yield stage
    finally:
        shutil.rmtree(stage)


@contextmanager
def _lent(job_dir: Path) -> Iterator[None]:
    """job_dir's files belong to uid 65534 during the run, and to the caller again afterwards."""
    _chown_tree(job_dir, NOBODY, NOBODY)
    try:
        yield
    finally:
        _chown_tree(job_dir, os.geteuid(), os.getegid())


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """lchown everything under root without following links or leaving its file system, and
    clear setuid/setgid bits, so the job's files can never become a privileged program.
    Keep their owner: files with more than one link (they may be linked from outside root, as
    the workers' shared measurement locks are) and what the job made unreachable (a path over
    PATH_MAX; owned by nobody, harmless)."""
    device = root.stat().st_dev
    os.chown(root, uid, gid)
    stack = [str(root)]
    while stack:
        for entry, info in _listing(stack.pop()):
            if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                continue
            try:
                os.chown(entry.path, uid, gid, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_mode & 0o6000:
                    os.chmod(entry.path, stat.S_IMODE(info.st_mode) & ~0o6000)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) and info.st_dev == device:
                stack.append(entry.path)


def _tree_bytes(root: Path) -> int:
    """Disk used under root, at least a block per entry so that many empty files count too.
    A folder that cannot be read (the job made its path too long, say) counts as full."""
    total, stack = 0, [str(root)]
    while stack:
        try:
            listing = _listing(stack.pop(), strict=True)
        except OSError:
            return sys.maxsize
        for entry, info in listing:
            total += max(info.st_blocks * 512, info.st_size, 4096)
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
    return total


def _listing(folder: str, strict: bool = False) -> list[tuple[os.DirEntry, os.stat_result]]:
    """A folder's entries with their lstat; what the job removes meanwhile is left out. An
    unreadable folder is empty, or with strict an OSError."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    found.append((entry, entry.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError:
        if strict:
            raise
    return found


def _tool(name: str) -> str:
    return shutil.which(name, path=HOST_PATH) or name
