"""The tuner's outcome for a failed candidate follows what failed, never the words of the
message: the reproductions of issue 15, end to end through the tuner's objective.

Real runs on the emulated device. Where a failure needs a broken kernel, the generated text of
the tuner's variants is edited (as test_runtime_run does for a wrong kernel); the all-CPU
baseline keeps the generated text.
"""

import textwrap

from offloader.buildopts import BuildOptions
from offloader.runtime.run import PreparedProgram, RunOptions
from offloader.tune.candidates import ProgramObjective, search_space

CANCELLING = """
    #include <stdio.h>
    #define N 4096
    double a[N];
    int main(void) {
      for (int i = 0; i < N; i++) a[i] = 1.0;
      a[0] = 1e17; a[N - 1] = -1e17;       /* in order, every 1.0 is lost and the sum is 0 */
      double s = 0;
      for (int i = 0; i < N; i++) s += a[i];
      %s
    }"""
FILL = """
    #include <stdio.h>
    double a[1000];
    int main(void) {
      for (int i = 0; i < 1000; i++) a[i] = i * 0.5;
      double s = 0;
      for (int i = 0; i < 1000; i++) s += a[i];
      printf("%.3f\\n", s);
      return 0;
    }"""


def program(tmp_path, text, name="prog.c"):
    src = tmp_path / name
    src.write_text(textwrap.dedent(text))
    return src


class Edited(PreparedProgram):
    """The program whose kernels for the tuner's variants are changed by `edit` (a broken variant)."""

    def __init__(self, options, workdir, edit):
        super().__init__(options, workdir)
        self.edit = edit

    def kernels(self, variants=None):
        module, plans = super().kernels(variants)
        return (self.edit(module) if variants else module), plans


def all_on_the_gpu(tmp_path, prepared):
    objective = ProgramObjective(prepared, RunOptions(device="emu", timeout=120), [()], "t4",
                                 tmp_path / "store", "outcomes", repeats=1)
    space = search_space(prepared)
    return objective.evaluate(space.config(space.ids))


def test_a_wrong_output_that_mentions_timeout_is_wrong_output(tmp_path):
    src = program(tmp_path, CANCELLING % 'printf("timeout budget left: %.1f\\n", s);\n      return 0;')
    outcome = all_on_the_gpu(tmp_path, PreparedProgram(BuildOptions((str(src),)), str(tmp_path / "b")))
    assert outcome.status == "wrong_output" and "timeout" in outcome.reason, outcome


def test_a_user_program_that_exits_125_is_not_a_runner_failure(tmp_path):
    """It returns 125 when its sum is off: a wrong result of the program, not a failed runner."""
    src = program(tmp_path, CANCELLING % 'printf("sum %.1f\\n", s);\n      return s == 0.0 ? 0 : 125;')
    outcome = all_on_the_gpu(tmp_path, PreparedProgram(BuildOptions((str(src),)), str(tmp_path / "b")))
    assert outcome.status == "wrong_output" and "exit status 125" in outcome.reason, outcome


def test_a_kernel_that_does_not_compile_is_compile_error(tmp_path):
    src = program(tmp_path, FILL)
    prepared = Edited(BuildOptions((str(src),)), str(tmp_path / "b"), lambda text: text + "\nthis is not CUDA;\n")
    assert all_on_the_gpu(tmp_path, prepared).status == "compile_error"


def test_a_kernel_that_writes_past_an_array_is_a_launch_error_of_its_region(tmp_path):
    src = program(tmp_path, FILL)
    prepared = Edited(BuildOptions((str(src),)), str(tmp_path / "b"),
                      lambda text: text.replace("a[i] = i * 0.5;", "a[i + 1] = i * 0.5;"))
    outcome = all_on_the_gpu(tmp_path, prepared)
    assert (outcome.status, outcome.region) == ("launch_error", "0"), outcome
