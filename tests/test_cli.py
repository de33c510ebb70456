"""The `offload analyze` command line: JSON contract, readable report, build options, selection."""

import json

import pytest

LOOP_KEYS = {"id", "file", "line", "column", "function", "var", "depth", "parent", "verdict",
             "reductions", "conditions", "reasons"}


def test_json_contract(analyze_json):
    doc = analyze_json("samples/matmul.c")
    assert doc["schema"] == 1 and doc["file"] == "samples/matmul.c"
    ids = [loop["id"] for loop in doc["loops"]]
    assert ids == list(range(len(ids)))
    for loop in doc["loops"]:
        assert LOOP_KEYS <= set(loop)
        assert loop["verdict"] in ("parallel", "sequential", "not-offloadable")
        if loop["parent"] is not None:
            parent = doc["loops"][loop["parent"]]
            assert parent["depth"] == loop["depth"] - 1 and parent["line"] <= loop["line"]
        assert loop["offload"] == (loop["verdict"] == "parallel")
    product = next(loop for loop in doc["loops"] if loop["depth"] == 0 and "C" in loop["writes"])
    assert set(product["reads"]) >= {"A", "B"}


def test_columns_are_those_of_the_original_source(analyze_json, tmp_path):
    src = tmp_path / "macro.c"
    src.write_text("#define LOOP(v, n) for (v = 0; v < n; v++)\n"
                   "#define NN 16\ndouble a[NN];\nint main(void) {\n  int i;\n"
                   "  /* pad */ LOOP(i, NN) a[i] = 2.0 * i;  for (i = 0; i < NN; i++) a[i] += 1;\n"
                   "  return 0;\n}\n")
    loops = analyze_json(src)["loops"]
    assert [(loop["line"], loop["column"]) for loop in loops] == [(6, 13), (6, 42)]


def test_defines_and_extra_sources(analyze_json, tmp_path):
    (tmp_path / "helper.c").write_text(
        "double shrink(double x) { return 0.5 * x; }\n"
        "void log_value(double x);\n")
    (tmp_path / "log.c").write_text(
        "#include <stdio.h>\nvoid log_value(double x) { printf(\"%f\\n\", x); }\n")
    main = tmp_path / "main.c"
    main.write_text(
        "double shrink(double x);\nvoid log_value(double x);\n#ifndef LEN\n#error LEN needed\n#endif\n"
        "double a[LEN];\nint main(void) {\n"
        "  for (int i = 0; i < LEN; i++) a[i] = shrink(i);\n"
        "  for (int i = 0; i < LEN; i++) log_value(a[i]);\n  return 0;\n}\n")
    doc = analyze_json(main, tmp_path / "helper.c", tmp_path / "log.c", "-D", "LEN=32", "--cflags", "-O2 -Wall")
    by_line = {loop["line"]: loop for loop in doc["loops"] if loop["file"] == str(main)}
    assert by_line[8]["verdict"] == "parallel"            # shrink() is a pure helper in another file
    assert by_line[9]["verdict"] == "not-offloadable"     # log_value() prints, in a third file
    assert "printf" in " ".join(by_line[9]["reasons"])


def test_only_and_never(offload, analyze_json):
    doc = analyze_json("samples/saxpy.c", "--never", "samples/saxpy.c:23")
    by_line = {loop["line"]: loop for loop in doc["loops"]}
    assert by_line[23]["verdict"] == "parallel" and by_line[23]["offload"] is False
    assert by_line[16]["offload"] is True
    doc = analyze_json("samples/saxpy.c", "--only", "saxpy.c:16")
    assert [loop["line"] for loop in doc["loops"] if loop["offload"]] == [16]


def test_only_never_offloads_a_loop_that_is_not_parallel(offload, analyze_json):
    loops = analyze_json("samples/prefix_sum.c")["loops"]
    line = next(loop["line"] for loop in loops if loop["verdict"] == "sequential")
    done = offload("analyze", "--json", "samples/prefix_sum.c", "--only", f"samples/prefix_sum.c:{line}")
    assert done.returncode == 0
    assert "will not be offloaded" in done.stderr
    assert not any(loop["offload"] for loop in json.loads(done.stdout)["loops"])


def test_readable_report_annotates_the_source(offload):
    done = offload("analyze", "samples/saxpy.c")
    assert done.returncode == 0, done.stderr
    assert "y[i] = a * x[i] + y[i];" in done.stdout or "for (int i = 0; i < n; i++)" in done.stdout
    assert "add `restrict` to x and y to drop the run-time check" in done.stdout
    assert "not-offloadable" in done.stdout and "saxpy" in done.stdout


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version(offload, flag):
    done = offload(flag)
    assert done.returncode == 0 and done.stdout
