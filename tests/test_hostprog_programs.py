"""The host program behaves as the user's executable does in the ways programs notice: exit()
from anywhere, buffered stdio, argv/envp/stdin/stderr, signals, locale, symbol binding,
includes and __FILE__ across several files. Loops a macro writes stay unwrapped with a reason;
the allocation table is exact and cheap; compiler failures are typed errors that name the
user's own file and line."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from offloader.analysis import analyze_program
from offloader.buildopts import BuildOptions
from offloader.codegen.regions import find_regions
from offloader.hostprog.baseline import build_cpu_baseline
from offloader.hostprog.build import build_host_library
from offloader.hostprog.compiler import BuildError
from offloader.hostprog.runner import RUNNER_FAILED, runner_command, runner_env


def write(folder, name, code):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code).lstrip("\n"))
    return path


def host_build(tmp_path, *sources, reference=True, **options):
    opts = BuildOptions(sources=tuple(map(str, sources)), **options)
    result = analyze_program(opts)
    regions, _ = find_regions(result)
    host = build_host_library(result, regions, opts, str(tmp_path / "host"))
    return host, (build_cpu_baseline(opts, str(tmp_path / "reference")) if reference else None)


def run_both(host, reference, args=(), stats=None, **kwargs):
    expected = subprocess.run([reference, *args], capture_output=True, timeout=60, **kwargs)
    kwargs["env"] = runner_env(kwargs.get("env"))
    done = subprocess.run(runner_command(host.library, list(args), "record" if stats else "none", stats,
                                         argv0=reference), capture_output=True, timeout=60, **kwargs)
    return expected, done


def calls_by_line(host, stats_path):
    stats = json.loads(stats_path.read_text())
    return {int(host.regions[int(k)].location.split(":")[1]): v["calls"] for k, v in stats["regions"].items()}


EXIT_PROGRAM = """
    #include <stdio.h>
    #include <stdlib.h>

    #define N 1000
    static double a[N];

    static void bye(void) { printf("atexit handler ran\\n"); }

    static void finish(double s)
    {
        printf("sum %.3f", s);            /* no newline: still in the buffer at exit */
        exit(3);
    }

    int main(void)
    {
        static char buffer[1 << 16];
        double s = 0.0;
        setvbuf(stdout, buffer, _IOFBF, sizeof buffer);
        atexit(bye);
        for (int i = 0; i < N; i++)
            a[i] = 0.5 * i;
        for (int i = 0; i < N; i++)
            s += a[i];
        for (int k = 0; k < 3000; k++)
            printf("line %d\\n", k);
        finish(s);
        return 0;
    }
"""


def test_exit_from_a_function_flushes_buffered_output_and_runs_the_exit_hook(tmp_path):
    host, reference = host_build(tmp_path, write(tmp_path, "exits.c", EXIT_PROGRAM))
    stats = tmp_path / "stats.json"
    expected, done = run_both(host, reference, stats=str(stats))
    assert expected.returncode == done.returncode == 3
    assert done.stdout == expected.stdout and done.stdout.endswith(b"sum 249750.000atexit handler ran\n")
    assert calls_by_line(host, stats) == {21: 1, 23: 1}


ARGV_PROGRAM = """
    #include <locale.h>
    #include <stdio.h>
    #include <stdlib.h>

    int main(int argc, char **argv, char **envp)
    {
        char line[64] = "";
        int sum = 0, counts[8];
        for (int i = 0; i < 8; i++)
            counts[i] = i * argc;
        for (int i = 0; i < 8; i++)
            sum += counts[i];
        struct { int main; } named = {3};              /* only the function is renamed */
        printf("argc %d sum %d in %s %d\\n", argc, sum, __func__, named.main);
        for (int i = 0; i < argc; i++)
            printf("argv[%d] = %s\\n", i, argv[i]);
        argv[1][0] = 'X';
        printf("changed %s, argv[argc] is %s\\n", argv[1], argv[argc] ? "set" : "NULL");
        printf("envp %s, MARK=%s, LC_CTYPE=%s\\n", envp[0] ? "set" : "empty", getenv("MARK"),
               getenv("LC_CTYPE") ? getenv("LC_CTYPE") : "(unset)");
        printf("locale %s\\n", setlocale(LC_ALL, NULL));
        if (fgets(line, sizeof line, stdin))
            printf("stdin: %s", line);
        fprintf(stderr, "to stderr\\n");
        return 7;
    }
"""


def test_main_with_argc_argv_envp_sees_what_the_executable_sees(tmp_path):
    host, reference = host_build(tmp_path, write(tmp_path, "args.c", ARGV_PROGRAM))
    env = {"PATH": "/usr/bin:/bin", "MARK": "here"}      # no LC_*: Python must not add one
    stats = tmp_path / "stats.json"
    expected, done = run_both(host, reference, ["first", "second word"], str(stats), env=env,
                              input=b"typed line\n")
    assert (done.returncode, done.stdout, done.stderr) == (expected.returncode, expected.stdout, expected.stderr)
    assert b"in main 3\n" in done.stdout and done.returncode == 7
    assert b"LC_CTYPE=(unset)" in done.stdout and b"locale C\n" in done.stdout
    assert calls_by_line(host, stats) == {9: 1, 11: 1}


def test_a_closed_pipe_ends_the_program_by_sigpipe_as_it_ends_the_executable(tmp_path):
    source = write(tmp_path, "forever.c", """
        #include <stdio.h>
        int main(void) { for (long k = 0; ; k++) printf("%ld\\n", k); }
    """)
    host, reference = host_build(tmp_path, source)
    statuses = []
    for command, env in (([reference], None), (runner_command(host.library), runner_env())):
        child = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
        child.stdout.read(4096)
        child.stdout.close()
        statuses.append(child.wait(timeout=30))
    assert statuses == [-signal.SIGPIPE, -signal.SIGPIPE]


def test_user_functions_named_like_library_functions_bind_to_the_users_own(tmp_path):
    source = write(tmp_path, "names.c", """
        #include <stdio.h>
        /* libc has both; the Python process that loads the program already holds libc */
        int optind = 5;
        __attribute__((noinline)) int error(int code) { return 2 * code; }
        int main(void) { printf("%d %d\\n", optind, error(21)); return 0; }
    """)
    host, reference = host_build(tmp_path, source)
    expected, done = run_both(host, reference)
    assert (done.stdout, expected.stdout) == (b"5 42\n", b"5 42\n")


def test_several_files_quoted_includes_and_file_names(tmp_path):
    project = tmp_path / "project"
    write(project, "include/config.h", "#define SCALE 3\n")
    write(project, "lib/util.h", "void scale(double *a, int n);\nconst char *util_file(void);\n")
    util = write(project, "lib/util.c", """
        #include "util.h"
        #include "config.h"
        void scale(double *a, int n)
        {
            for (int i = 0; i < n; i++)
                a[i] *= SCALE;
        }
        const char *util_file(void) { return __FILE__; }
    """)
    main = write(project, "main.c", """
        #include <stdio.h>
        #include <stdlib.h>
        #include "lib/util.h"
        int main(void)
        {
            int n = 100;
            double *a = malloc(n * sizeof *a), s = 0.0;
            for (int i = 0; i < n; i++)
                a[i] = i;
            scale(a, n);
            for (int i = 0; i < n; i++)
                s += a[i];
            printf("%s:%d %s %.1f\\n", __FILE__, __LINE__, util_file(), s);
            free(a);
            return 0;
        }
    """)
    host, reference = host_build(tmp_path, main, util, include_dirs=(str(project / "include"),))
    stats = tmp_path / "stats.json"
    expected, done = run_both(host, reference, stats=str(stats))
    assert done.stdout == expected.stdout
    assert done.stdout.decode().startswith(f"{main}:13 {util} 14850.0")
    regions = {r.location: r for r in host.regions.values()}
    assert set(regions) == {f"{main}:8:5", f"{main}:11:5", f"{util}:5:5"}
    recorded = json.loads(stats.read_text())["regions"]
    scale_call = recorded[str(regions[f"{util}:5:5"].id)]["samples"][0]
    assert {s["name"]: s.get("allocation", {}).get("size") for s in scale_call} == {"a": 800, "n": None}


MACRO_PROGRAM = """
    #include <stdio.h>
    #define N 32
    #define FOR_I for (i = 0; i < N; i++)
    #define SET(k) a[k] = 2 * (k);

    double a[N], b[N];

    int main(int argc, char **argv)
    {
        int i, flag = argc > 1;
        double s = 0.0;

        FOR_I b[i] = i;
        for (i = 0; i < N; i++) SET(i) s += 1;
        if (flag)
            for (i = 0; i < N; i++) a[i] += 1.0;
        else
            for (i = 0; i < N; i++) a[i] = -1.0;
        for (i = 0; i < N; i++)
            s += a[i] + b[i];
        printf("%s %.1f %d\\n", argv[0] ? "ran" : "?", s, i);
        return 0;
    }
"""


def test_loops_written_by_macros_stay_unwrapped_and_else_keeps_its_if(tmp_path):
    host, reference = host_build(tmp_path, write(tmp_path, "macros.c", MACRO_PROGRAM))
    reasons = {host_location: why for host_location, why in host.skipped.items()}
    assert len(reasons) == 2 and all("macro" in why for why in reasons.values())
    for args, taken in (([], 18), (["flag"], 16)):
        stats = tmp_path / f"stats{len(args)}.json"
        expected, done = run_both(host, reference, args, str(stats))
        assert done.stdout == expected.stdout and done.returncode == 0
        assert calls_by_line(host, stats) == {taken: 1, 19: 1}
    manifest = json.loads((tmp_path / "host" / "hostprog.json").read_text())
    assert sorted(s["location"].split(":", 1)[1] for s in manifest["skipped"]) == ["13:5", "14:5"]


PRAGMA_PROGRAM = """
    #include <stdio.h>
    #define N 1000
    long a[N], b[N];

    int main(void)
    {
        long s = 0;
    #pragma omp parallel for
        for (int i = 0; i < N; i++)
            a[i] = 3 * i;
        /* a comment between */
    #pragma GCC ivdep /* "quoted" */ \\
           // continued
        for (int i = 0; i < N; i++)
            b[i] = a[i] + 1;
        #  pragma omp parallel for reduction(+:s)
        for (int i = 0; i < N; i++)
            s += b[i];
        printf("%ld at line %d\\n", s, __LINE__);
        return 0;
    }
"""


def test_pragmas_before_a_loop_stay_attached_to_it(tmp_path):
    source = write(tmp_path, "pragmas.c", PRAGMA_PROGRAM)
    host, reference = host_build(tmp_path, source, cflags="-fopenmp -Wall -Werror")
    copy = (tmp_path / "host" / "src" / "0" / "pragmas.c").read_text()
    assert copy.count("\n") == source.read_text().count("\n") and "#pragma" not in copy
    assert '_Pragma("omp parallel for reduction(+:s)")' in copy and '_Pragma("GCC ivdep")' in copy
    stats = tmp_path / "stats.json"
    expected, done = run_both(host, reference, stats=str(stats), env={**runner_env(), "OMP_NUM_THREADS": "3"})
    assert done.stdout == expected.stdout == b"1499500 at line 19\n"
    assert calls_by_line(host, stats) == {9: 1, 14: 1, 17: 1}


def test_a_twin_that_does_not_compile_leaves_the_region_wrapped_and_says_why(tmp_path):
    source = write(tmp_path, "helper.c", """
        #include <stdio.h>
        static double factor = 2.0;
        static double twice(double x) { return x * factor; }
        double a[16];
        int main(void)
        {
            for (int i = 0; i < 16; i++)
                a[i] = twice(i);
            printf("%.1f\\n", a[15]);
            return 0;
        }
    """)
    host, reference = host_build(tmp_path, source)
    region, = host.regions.values()
    assert region.twin == "" and "factor" in region.twin_error
    expected, done = run_both(host, reference)
    assert done.stdout == expected.stdout == b"30.0\n"


ALLOC_PROGRAM = """
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>

    #define M 60000
    static void *blocks[M];
    static long long sizes[M];
    static int released;
    static long long released_bytes;

    static void on_release(void *base, long long size) { (void)base; released++; released_bytes += size; }

    /* first, middle and last byte of block k all resolve to block k; one past it does not */
    static int wrong(int k)
    {
        void *base;
        long long size;
        char *p = blocks[k];
        long long at[3] = {0, sizes[k] / 2, sizes[k] - 1};
        for (int j = 0; j < 3; j++)
            if (!__offload_alloc_lookup(p + at[j], &base, &size) || base != p || size != sizes[k])
                return 1;
        return __offload_alloc_lookup(p + sizes[k], &base, &size) && base == p;
    }

    int main(void)
    {
        int errors = 0;
        long long watched_bytes = 0;
        __offload_set_free_hook(on_release);
        for (int k = 0; k < M; k++) {
            sizes[k] = 1 + (k * 7919LL) % 3000;
            switch (k % 5) {
            case 0: blocks[k] = malloc(sizes[k]); break;
            case 1: blocks[k] = calloc(1, sizes[k]); break;
            case 2: sizes[k] = (sizes[k] + 63) / 64 * 64; blocks[k] = aligned_alloc(64, sizes[k]); break;
            case 3: if (posix_memalign(&blocks[k], 128, sizes[k])) blocks[k] = NULL; break;
            default: blocks[k] = realloc(NULL, sizes[k]); break;
            }
        }
        for (int k = 0; k < M; k++)
            errors += wrong(k);
        for (int k = 0; k < 10; k++) {
            errors += !__offload_alloc_watch(blocks[k], 1);
            watched_bytes += sizes[k];
        }
        errors += __offload_alloc_watch(&errors, 1);     /* not a heap block */
        for (int k = 0; k < 10; k += 2)
            free(blocks[k]);
        for (int k = 1; k < 10; k += 2) {
            sizes[k] *= 4;
            blocks[k] = realloc(blocks[k], sizes[k]);
            errors += wrong(k);
        }
        for (int k = 10; k < M; k += 2)
            free(blocks[k]);
        for (int k = 11; k < M; k += 2)
            errors += wrong(k);
        free(strdup("made by libc, freed through the table"));
        printf("errors %d released %d bytes %s\\n", errors, released,
               released_bytes == watched_bytes ? "match" : "differ");
        return 0;
    }
"""


def test_the_allocation_table_finds_blocks_by_any_byte_and_reports_watched_releases(tmp_path):
    host, _ = host_build(tmp_path, write(tmp_path, "alloc.c", ALLOC_PROGRAM), reference=False)
    done = subprocess.run(runner_command(host.library), capture_output=True, env=runner_env(), timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"errors 0 released 10 bytes match\n", b"")


def test_allocation_heavy_programs_pay_little_for_tracking(tmp_path):
    source = write(tmp_path, "churn.c", """
        #include <stdio.h>
        #include <stdlib.h>
        #define LIVE 50000
        #define ROUNDS 2000000
        static void *live[LIVE];
        int main(void)
        {
            unsigned long long x = 88172645463325252ull, total = 0;
            for (long k = 0; k < ROUNDS; k++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                free(live[x % LIVE]);
                live[x % LIVE] = malloc(16 + x % 200);
                total += x % 7;
            }
            printf("total %llu\\n", total);
            return 0;
        }
    """)
    host, reference = host_build(tmp_path, source)
    started = time.perf_counter()
    expected = subprocess.run([reference], capture_output=True, timeout=60)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    done = subprocess.run(runner_command(host.library), capture_output=True, env=runner_env(), timeout=60)
    tracked = time.perf_counter() - started
    assert done.stdout == expected.stdout
    # measured: about 40 ns per malloc/free pair and 0.05 s of Python start; an O(n) table
    # would take minutes
    assert tracked < plain + 2_000_000 * 250e-9 + 1.0


def test_a_compile_error_is_a_typed_error_at_the_users_line(tmp_path):
    source = write(tmp_path, "bad.c", """
        double a[8];
        int main(void)
        {
            for (int i = 0; i < 8; i++)
                a[i] = i;
            double d = a[1];
            int *p = d;
            return *p;
        }
    """)
    with pytest.raises(BuildError) as caught:
        host_build(tmp_path, source, reference=False)
    error = caught.value
    assert (error.location.file, error.location.line) == (str(source), 7)
    assert "incompatible types" in str(error) and str(tmp_path / "host" / "src") not in error.output
    assert str(tmp_path / "host" / "src" / "0" / "bad.c") in error.command


def test_a_link_error_is_a_typed_error_for_both_builds(tmp_path):
    source = write(tmp_path, "unlinked.c", """
        void missing(double *a, int n);
        int main(void) { double a[4]; missing(a, 4); return 0; }
    """)
    opts = BuildOptions(sources=(str(source),))
    result = analyze_program(opts)
    with pytest.raises(BuildError, match="undefined reference to `missing'"):
        build_host_library(result, find_regions(result)[0], opts, str(tmp_path / "host"))
    with pytest.raises(BuildError, match="missing"):
        build_cpu_baseline(opts, str(tmp_path / "reference"))


def test_the_runner_says_when_it_cannot_load_the_program(tmp_path):
    done = subprocess.run([sys.executable, "-m", "offloader.hostprog.runner", str(tmp_path / "none.so")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == RUNNER_FAILED and "cannot load" in done.stderr
