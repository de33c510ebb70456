"""Bad input: one clear `file:line:col: what` line, exit status 2, no traceback, nothing lost."""

import re

import pytest

from offloader.frontend.sources import MAX_SOURCE_BYTES


def _assert_clean_failure(done, pattern):
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert re.search(pattern, done.stderr), done.stderr
    assert done.stdout == ""


def test_syntax_error_names_file_line_and_column(offload, tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int main(void) {\n  int x = 3\n  return x;\n}\n")
    done = offload("analyze", src)
    _assert_clean_failure(done, rf"{re.escape(str(src))}:3:\d+: .*syntax error")


def test_syntax_error_without_a_parser_position_still_gets_a_line(offload, tmp_path):
    src = tmp_path / "bad2.c"
    src.write_text("#include <stdio.h>\nint main(void) {\n  int x = ;\n}\n")
    done = offload("analyze", src)
    _assert_clean_failure(done, rf"{re.escape(str(src))}:3:\d+: ")


def test_missing_include(offload, tmp_path):
    src = tmp_path / "inc.c"
    src.write_text('#include "nowhere.h"\nint main(void) { return 0; }\n')
    done = offload("analyze", src)
    _assert_clean_failure(done, rf"{re.escape(str(src))}:1:10: nowhere.h: No such file")


def test_include_dir_option_fixes_it(offload, tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "sizes.h").write_text("#define LEN 8\n")
    src = tmp_path / "prog.c"
    src.write_text('#include "sizes.h"\ndouble a[LEN];\nint main(void) {\n'
                   '  for (int i = 0; i < LEN; i++) a[i] = i;\n  return 0;\n}\n')
    done = offload("analyze", "--json", "-I", tmp_path / "inc", src)
    assert done.returncode == 0, done.stderr


def test_empty_file(offload, tmp_path):
    src = tmp_path / "empty.c"
    src.write_text("   \n")
    _assert_clean_failure(offload("analyze", src), r"empty\.c: file is empty")


def test_binary_file(offload, tmp_path):
    src = tmp_path / "blob.c"
    src.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00binary")
    _assert_clean_failure(offload("analyze", src), r"blob\.c: file is binary")


def test_file_over_the_size_limit(offload, tmp_path):
    src = tmp_path / "huge.c"
    src.write_text("/*" + "x" * (MAX_SOURCE_BYTES + 10) + "*/\nint main(void){return 0;}\n")
    _assert_clean_failure(offload("analyze", src), r"huge\.c: file is \d+ bytes, over the")


def test_nonexistent_path(offload, tmp_path):
    _assert_clean_failure(offload("analyze", tmp_path / "ghost.c"), r"ghost\.c: no such file")


def test_directory_instead_of_file(offload, tmp_path):
    folder = tmp_path / "dir.c"
    folder.mkdir()
    _assert_clean_failure(offload("analyze", folder), r"dir\.c: is a directory")


def test_not_a_c_file(offload, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("hello")
    _assert_clean_failure(offload("analyze", src), r"expected C source files ending in \.c")


@pytest.mark.parametrize("spec", ["nocolon", "app.c:x"])
def test_bad_selection_spec(offload, spec):
    _assert_clean_failure(offload("analyze", "samples/saxpy.c", "--only", spec), r"is not FILE:LINE")


def test_selection_on_a_line_without_a_loop(offload):
    _assert_clean_failure(offload("analyze", "samples/saxpy.c", "--never", "saxpy.c:1"),
                          r"no for loop on that line")


def test_the_input_file_is_left_untouched(offload, tmp_path):
    src = tmp_path / "keep.c"
    text = "int main(void) {\n  int s = 0;\n  for (int i = 0; i < 4; i++) s += i;\n  return s;\n}\n"
    src.write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert offload("analyze", src).returncode == 0
    assert src.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == before
