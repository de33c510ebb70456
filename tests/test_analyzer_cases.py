"""Small programs, one construct each, with the verdict the analyzer must reach and why."""

import textwrap

import pytest

from offloader.analysis import analyze_program
from offloader.buildopts import BuildOptions


def verdicts(tmp_path, code, name="case.c"):
    src = tmp_path / name
    src.write_text(textwrap.dedent(code))
    loops = analyze_program(BuildOptions(sources=(str(src),))).to_json()["loops"]
    return {loop["line"]: loop for loop in loops}


CASES = {
    "linearised_malloc_2d": ("""
        #include <stdlib.h>
        void f(int n, int m) {
          double *a = malloc(sizeof(double) * n * m), *b = malloc(sizeof(double) * n * m);
          for (int i = 1; i < n - 1; i++)
            for (int j = 1; j < m - 1; j++)
              a[i * m + j] = b[(i - 1) * m + j] + b[i * m + j + 1];
          free(a); free(b);
        }""", {5: "parallel", 6: "parallel"}),
    "linearised_out_of_radix_is_sequential": ("""
        void f(int n, int m, double *restrict a) {
          for (int i = 0; i < n; i++)
            for (int j = 0; j <= m; j++)
              a[i * m + j] = a[i * m + j] + 1;
        }""", {3: "sequential", 4: "parallel"}),
    "radix_is_a_sum": ("""
        void f(int n, int m, double *restrict o, const double *restrict g) {
          for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
              o[(i + 1) * (m + 2) + j + 1] = g[(i + 1) * (m + 2) + j];
        }""", {3: "parallel", 4: "parallel"}),
    "index_temporary_is_substituted": ("""
        void f(int n, int m, float *restrict a, const float *restrict b) {
          for (int i = 0; i < n; i++) {
            int row = i * m;
            for (int j = 0; j < m; j++) { int idx = row + j; a[idx] = 2 * b[idx]; }
          }
        }""", {3: "parallel", 5: "parallel"}),
    "row_pointer_is_rebased": ("""
        void f(int n, int m, float *restrict a) {
          for (int i = 0; i < n; i++) {
            float *row = &a[i * m];
            for (int j = 0; j < m; j++) row[j] = i + j;
          }
        }""", {3: "parallel", 5: "parallel"}),
    "shifted_row_pointer_overlaps": ("""
        void f(int n, int m, float *restrict a) {
          for (int i = 0; i < n; i++) {
            float *row = &a[i * m];
            for (int j = 0; j < m + 1; j++) row[j] = i + j;
          }
        }""", {3: "sequential", 5: "parallel"}),
    "triangular": ("""
        #define N 32
        double a[N][N];
        void f(void) {
          for (int i = 0; i < N; i++)
            for (int j = 0; j < i; j++)
              a[i][j] = a[j][i];
        }""", {5: "parallel", 6: "parallel"}),       # writes the lower triangle, reads the upper
    "transpose_in_place_is_carried": ("""
        #define N 32
        double a[N][N];
        void f(void) {
          for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
              a[i][j] = a[j][i];
        }""", {5: "sequential", 6: "parallel"}),
    "stride_two_is_independent": ("""
        double a[100];
        void f(void) { for (int i = 0; i < 98; i += 2) a[i + 1] = a[i]; }
        """, {3: "parallel"}),
    "struct_members": ("""
        struct p { double x, v; };
        struct p ps[64];
        void f(double dt) { for (int i = 0; i < 64; i++) ps[i].x += dt * ps[i].v; }
        """, {4: "parallel"}),
    "struct_neighbour_is_carried": ("""
        struct p { double x, v; };
        struct p ps[64];
        void f(void) { for (int i = 1; i < 64; i++) ps[i].x = ps[i - 1].x + ps[i].v; }
        """, {4: "sequential"}),
    "break_of_inner_loop_only": ("""
        double a[10][10];
        void f(void) {
          for (int i = 0; i < 10; i++)
            for (int j = 0; j < 10; j++) { if (a[i][j] < 0) break; a[i][j] *= 2; }
        }""", {4: "parallel", 5: "not-offloadable"}),
    "return_inside": ("""
        int f(double *a, int n) { for (int i = 0; i < n; i++) if (a[i] < 0) return i; return -1; }
        """, {2: "not-offloadable"}),
    "static_local_state": ("""
        double a[10];
        void f(void) { for (int i = 0; i < 10; i++) { static int c; c++; a[i] = c; } }
        """, {3: "sequential"}),
    "address_taken_scalar": ("""
        double a[10];
        void g(int *p);
        void f(void) { int t; for (int i = 0; i < 10; i++) { t = i; a[i] = t; } g(&t); }
        """, {4: "sequential"}),
    "conditional_write_read_after_loop": ("""
        double a[10];
        double f(void) { double last = 0; for (int i = 0; i < 10; i++) if (a[i] > 0) last = a[i]; return last; }
        """, {3: "sequential"}),
    "unconditional_write_read_after_loop_is_lastprivate": ("""
        double a[10];
        double f(void) { double t = 0; for (int i = 0; i < 10; i++) { t = a[i] * 2; a[i] = t; } return t; }
        """, {3: "parallel"}),
    "argmax_is_not_a_reduction": ("""
        double a[10];
        int f(void) { double m = a[0]; int k = 0;
          for (int i = 0; i < 10; i++) if (a[i] > m) { m = a[i]; k = i; }
          return k; }
        """, {4: "sequential"}),
    "min_via_ternary": ("""
        double a[10];
        double f(void) { double m = a[0]; for (int i = 0; i < 10; i++) m = a[i] < m ? a[i] : m; return m; }
        """, {3: "parallel"}),
    "parameter_arrays_may_alias": ("""
        void f(int n, double x[100], double y[100]) { for (int i = 0; i < n; i++) y[i] = x[i]; }
        """, {2: "parallel"}),
    "inner_while_counter_is_carried": ("""
        double a[10];
        void f(void) { int k = 0; for (int i = 0; i < 10; i++) { while (k < i) k++; a[i] = k; } }
        """, {3: "sequential"}),
    "loop_variable_changed_in_body": ("""
        double a[10];
        void f(void) { for (int i = 0; i < 10; i++) { a[i] = 0; i++; } }
        """, {3: "not-offloadable"}),
    "index_array_write_is_carried": ("""
        int idx[10]; double h[10];
        void f(void) { for (int i = 0; i < 10; i++) h[idx[i]] += 1; }
        """, {3: "sequential"}),
    "index_array_read_is_fine": ("""
        int idx[10]; double h[10], g[10];
        void f(void) { for (int i = 0; i < 10; i++) g[i] = h[idx[i]]; }
        """, {3: "parallel"}),
    "pointer_to_pointer_rows_need_a_check": ("""
        void f(int n, int m, double **a) { for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) a[i][j] = 0; }
        """, {2: "parallel"}),
    "pointer_to_pointer_neighbour_rows_are_carried": ("""
        void f(int n, int m, float **a) {
          for (int i = 1; i < n; i++)
            for (int j = 0; j < m; j++) a[i][j] = a[i - 1][j];
        }""", {3: "sequential", 4: "parallel"}),
    "row_pointer_in_a_struct_is_loaded_once": ("""
        struct grid { int n; double *cells; };
        void f(struct grid *g, struct grid *h) { for (int i = 0; i < g->n; i++) g->cells[i] = h->cells[i]; }
        """, {3: "parallel"}),
    "a_store_to_the_field_inside_the_loop_keeps_it_sequential": ("""
        struct soa { int n; double *x, *y; };
        void f(struct soa *p) { for (int i = 0; i < p->n; i++) { p->x[i] = 0; p->x = p->y; } }
        """, {3: "sequential"}),
    "a_store_to_the_bound_field_is_carried": ("""
        struct soa { int n; double *x; };
        void f(struct soa *p) { for (int i = 0; i < 100; i++) { p->x[i] = 1; p->n = i; } }
        """, {3: "sequential"}),
    "a_field_through_another_loaded_pointer_is_loaded_too": ("""
        struct grid { double *u; };
        struct mesh { struct grid *g; int n; };
        void f(struct mesh *m) { for (int i = 0; i < m->n; i++) m->g->u[i] = 2 * i; }
        """, {4: "parallel"}),
    "a_chain_of_four_loaded_pointers_is_not_followed": ("""
        struct d { double *x; }; struct c { struct d *d; }; struct b { struct c *c; }; struct a { struct b *b; };
        void f(struct a *a, int n) { for (int i = 0; i < n; i++) a->b->c->d->x[i] = 2 * i; }
        """, {3: "sequential"}),
    "an_array_of_structs_element_that_changes_is_not_loaded_once": ("""
        struct row { int n; double *v; };
        void f(struct row *r, int n) {
          for (int i = 0; i < n; i++)
            for (int j = 0; j < r[i].n; j++) r[i].v[j] *= 2;
        }""", {4: "sequential", 5: "parallel"}),
    "a_guarded_subscripted_field_is_not_loaded_early": ("""
        struct row { int n; double *v; };
        void f(struct row *r, int k, int len, double *y, int n) {
          for (int i = 0; i < n; i++) if (k < len) y[i] = r[k].v[i];
        }""", {4: "sequential"}),
    "a_struct_by_value_needs_no_check": ("""
        struct span { int n; double *v; };
        void f(struct span s) { for (int i = 0; i < s.n; i++) s.v[i] *= 2; }
        """, {3: "parallel"}),
    "a_struct_by_value_written_in_the_loop_is_carried": ("""
        struct span { int n; double *v; };
        void f(struct span s) { for (int i = 0; i < 10; i++) { s.v[i] = 0; s.n = i; } }
        """, {3: "sequential"}),
    "guard_early_return_proves_distinct_columns": ("""
        void f(int n, int m, double *restrict a) {
          if (m < 2) return;
          for (int i = 0; i < n; i++) { a[i * m] = 0; a[i * m + m - 1] = 1; }
        }""", {4: "parallel"}),
    "without_the_guard_the_columns_may_meet": ("""
        void f(int n, int m, double *restrict a) {
          for (int i = 0; i < n; i++) { a[i * m] = 0; a[i * m + m - 1] = 1; }
        }""", {3: "sequential"}),
    "a_guard_whose_variable_changes_is_not_a_fact": ("""
        void f(int n, int m, double *restrict a) {
          if (m >= 2) { m = 1; for (int i = 0; i < n; i++) { a[i * m] = 0; a[i * m + m - 1] = 1; } }
        }""", {3: "sequential"}),
    "an_unsigned_guard_is_not_a_fact": ("""
        void f(int n, unsigned m, double *restrict a) {
          if (m - 2 < 100) for (int i = 0; i < n; i++) { a[i * m] = 0; a[i * m + m - 1] = 1; }
        }""", {3: "sequential"}),
    "scratch_array_written_first_is_private": ("""
        void f(int n, const double *restrict in, double *restrict out) {
          double t[4];
          for (int i = 0; i < n; i++) {
            for (int k = 0; k < 4; k++) t[k] = in[i] * k;
            out[i] = t[0] + t[3];
          }
        }""", {4: "parallel", 5: "parallel"}),
    "scratch_array_read_after_the_loop_is_lastprivate": ("""
        double f(int n, double *restrict out) {
          double t[4];
          for (int i = 0; i < n; i++) {
            for (int k = 0; k < 4; k++) t[k] = i + k;
            out[i] = t[0] + t[3];
          }
          return t[1];
        }""", {4: "parallel", 5: "parallel"}),
    "scratch_array_read_after_the_loop_and_written_apart_is_not_private": ("""
        double f(int n, double *restrict out) {
          double t[64];
          for (int i = 0; i < n && i < 60; i++) {
            for (int k = 0; k < 4; k++) t[k] = i + k;
            t[4 + i] = 0;
            out[i] = t[0] + t[3];
          }
          return t[1];
        }""", {4: "sequential"}),
    "scratch_array_written_only_sometimes_is_not_private": ("""
        void f(int n, double *restrict out) {
          double t[4];
          for (int i = 0; i < n; i++) {
            if (i > 2) for (int k = 0; k < 4; k++) t[k] = i + k;
            out[i] = t[0] + t[3];
          }
        }""", {4: "sequential"}),
    "scratch_array_written_partly_is_not_private": ("""
        void f(int n, double *restrict out) {
          double t[4];
          for (int i = 0; i < n; i++) {
            for (int k = 0; k < 3; k++) t[k] = i + k;
            out[i] = t[0] + t[3];
          }
        }""", {4: "sequential"}),
    "scratch_array_read_before_written_is_not_private": ("""
        void f(int n, double *restrict out) {
          double t[4] = {0};
          for (int i = 0; i < n; i++) {
            out[i] = t[0];
            for (int k = 0; k < 4; k++) t[k] = i + k;
          }
        }""", {4: "sequential"}),
    "scratch_array_whose_address_escapes_is_not_private": ("""
        void g(double *p);
        void f(int n, double *restrict out) {
          double t[4];
          double *q = t;
          for (int i = 0; i < n; i++) {
            for (int k = 0; k < 4; k++) t[k] = i + k;
            out[i] = t[0] + t[3];
          }
          g(q);
        }""", {6: "sequential"}),
    "restrict_locals_need_no_check": ("""
        struct soa { int n; double *x, *y; };
        void f(struct soa *p) {
          double *restrict x = p->x, *restrict y = p->y;
          for (int i = 0; i < 100; i++) x[i] += y[i];
        }""", {5: "parallel"}),
    "pure_helper_reading_the_written_array": ("""
        static double sum(const double *v, int n) { double s = 0; for (int k = 0; k < n; k++) s += v[k]; return s; }
        double a[10];
        void f(void) { for (int i = 0; i < 10; i++) a[i] = sum(a, 10); }
        """, {2: "parallel", 4: "sequential"}),
    "io_in_a_branch": ("""
        #include <stdio.h>
        double a[10];
        void f(void) { for (int i = 0; i < 10; i++) { if (a[i] < 0) printf("neg\\n"); a[i] = 1; } }
        """, {4: "not-offloadable"}),
    "helper_reads_the_reduction_variable": ("""
        double total, a[10];
        static double peek(double x) { return x + total; }
        void f(void) { for (int i = 0; i < 10; i++) total += peek(a[i]); }
        """, {4: "sequential"}),
    "pointer_loop_variable": ("""
        void f(double *a, int n) { for (double *p = a; p < a + n; p++) *p = 0; }
        """, {2: "not-offloadable"}),
    "address_taken_offset_is_not_a_parameter": ("""
        double a[100];
        void g(int *k);
        void f(void) { int off = 0; int *po = &off; g(po);
          for (int i = 0; i < 10; i++) { a[i + off] = a[i]; *po = i; } }
        """, {5: "sequential"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(tmp_path, name):
    code, expected = CASES[name]
    found = verdicts(tmp_path, code)
    got = {line: found[line]["verdict"] for line in expected if line in found}
    assert got == expected, {line: found[line]["reasons"] for line in found}


def test_lastprivate_and_private_are_reported(tmp_path):
    loop = verdicts(tmp_path, CASES["unconditional_write_read_after_loop_is_lastprivate"][0])[3]
    assert loop["lastprivate"] == ["t"] and "t" in loop["private"]


def test_reduction_forms(tmp_path):
    found = verdicts(tmp_path, """
        #include <math.h>
        double a[10];
        double f(void) {
          double s = 0, p = 1, hi = 0, lo = 1e9, m2 = 0;
          for (int i = 0; i < 10; i++) {
            s -= a[i]; p *= a[i]; hi = fmax(hi, a[i]); lo = fmin(a[i], lo);
            if (a[i] > m2) m2 = a[i];
          }
          return s + p + hi + lo + m2;
        }""")
    assert {(r["var"], r["op"]) for r in found[6]["reductions"]} == {
        ("s", "+"), ("p", "*"), ("hi", "max"), ("lo", "min"), ("m2", "max")}


def test_dependence_names_kind_iterations_and_both_positions(tmp_path):
    loop = verdicts(tmp_path, """
        double a[100];
        void f(void) {
          for (int i = 2; i < 100; i++)
            a[i] = a[i - 2] * 0.5;
        }""")[4]
    assert loop["verdict"] == "sequential"
    dep = loop["dependences"][0]
    assert dep["var"] == "a" and dep["kind"] == "flow" and dep["distance"] == 2
    assert dep["source"].endswith(":5:5") and dep["sink"].endswith(":5:12")
    assert "i=" in loop["reasons"][0]


def test_row_pointer_arrays_get_a_distinct_rows_condition(tmp_path):
    loop = verdicts(tmp_path, "void f(int n, int m, double **a, double *b) {\n"
                              "  for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) a[i][j] = b[j];\n}\n")[2]
    assert {"kind": "distinct-rows", "vars": ["a"]} in loop["conditions"]
    assert {"kind": "no-alias", "vars": ["a", "b"]} in loop["conditions"]


def test_restrict_hint_names_the_pointers(tmp_path):
    loop = verdicts(tmp_path, "void f(int n, float *x, float *y) { for (int i = 0; i < n; i++) y[i] += x[i]; }\n")[1]
    assert loop["conditions"] == [{"kind": "no-alias", "vars": ["x", "y"]}]
    assert any("add `restrict` to x and y" in h for h in loop["hints"])


def test_gnu_extensions_parse_and_count_as_side_effects(tmp_path):
    found = verdicts(tmp_path, """
        #include <stdarg.h>
        #include <stdio.h>
        static unsigned long long ticks(void) {
          unsigned lo, hi; __asm__ __volatile__ ("rdtsc" : "=a" (lo), "=d" (hi));
          return ((unsigned long long)hi << 32) | lo;
        }
        static int sum_all(int n, ...) {
          va_list ap; int s = 0; va_start(ap, n);
          for (int i = 0; i < n; i++) s += va_arg(ap, int);
          va_end(ap); return s;
        }
        double a[64];
        int main(void) {
          for (int i = 0; i < 4; i++) { asm("nop"); a[i] = 0; }
          for (int i = 0; i < 64; i++) a[i] = i;
          printf("%d %llu\\n", sum_all(2, 1, 2), ticks());
          return 0;
        }""")
    assert found[10]["verdict"] == "not-offloadable"      # va_arg advances the list
    assert found[15]["verdict"] == "not-offloadable"      # inline assembly
    assert found[16]["verdict"] == "parallel"


def test_union_members_overlap(tmp_path):
    found = verdicts(tmp_path, """
        union cell { double d; long bits; };
        union cell c[64];
        struct pair { double d; long bits; };
        struct pair s[64];
        void f(void) {
          for (int i = 1; i < 64; i++) c[i].d = c[i - 1].bits;
          for (int i = 1; i < 64; i++) s[i].d = s[i - 1].bits;
        }""")
    assert found[7]["verdict"] == "sequential"
    assert found[8]["verdict"] == "parallel"


def test_min_in_a_bound_keeps_linearised_subscripts_exact(tmp_path):
    found = verdicts(tmp_path, """
        #define MIN(a, b) ((a) < (b) ? (a) : (b))
        void f(int n, int m, int t, double *restrict a) {
          for (int i = 0; i < n; i++)
            for (int j = 0; j < MIN(t, m); j++)
              a[i * m + j] = 0;
        }""")
    assert found[4]["verdict"] == "parallel"


def test_two_upper_bounds_joined_by_and(tmp_path):
    loop = verdicts(tmp_path, """
        void f(int n, int p, double *restrict a, const double *restrict b) {
          for (int i = 0; i < n && i < p; i++) a[i] = b[i];
        }""")[3]
    assert loop["verdict"] == "parallel"
    assert loop["trip"]["end"] == "(n < p) ? (n) : (p)"


def test_helper_reading_the_whole_array_is_described_as_such(tmp_path):
    loop = verdicts(tmp_path, """
        double A[16];
        static double peek(int i) { return A[i + 1]; }
        void f(void) { for (int i = 0; i < 15; i++) A[i] = peek(i) + 1.0; }
        """)[4]
    assert loop["verdict"] == "sequential"
    assert "may read any element" in loop["reasons"][0]


def test_a_shadowing_declaration_does_not_hide_the_outer_variable(tmp_path):
    loop = verdicts(tmp_path, """
        double a[16], b[16], c[16];
        void f(void) {
          double t = 0;
          for (int i = 0; i < 16; i++) {
            a[i] = t;
            { double t = b[i]; c[i] = t; }
            t = a[i] + 1;
          }
        }""")[5]
    assert loop["verdict"] == "sequential"


def test_a_goto_into_the_loop_blocks_it(tmp_path):
    found = verdicts(tmp_path, """
        double a[16];
        void f(int skip) {
          double t = 0;
          if (skip) goto inside;
          for (int i = 0; i < 16; i++) {
            t = a[i];
          inside:
            a[i] = t + 1;
          }
        }""")
    assert found[6]["verdict"] == "not-offloadable"
    assert "label" in found[6]["reasons"][0]


def test_complex_numbers_and_kr_definitions_parse(tmp_path):
    found = verdicts(tmp_path, """
        #include <complex.h>
        double complex z[16];
        int kr(a, b) int a; double *b; { int i; for (i = 0; i < a; i++) b[i] = i; return 0; }
        void f(void) { for (int i = 0; i < 16; i++) z[i] = i + I * i; }
        """)
    assert found[4]["verdict"] == "parallel" and found[5]["verdict"] == "parallel"


def test_a_loop_variable_whose_address_is_taken_is_not_offloaded(tmp_path):
    loop = verdicts(tmp_path, """
        double a[16];
        void f(void) { int i; int *pi = &i; for (i = 0; i < 16; i++) { a[i] = 1; if (a[0] > 5) *pi = 20; } }
        """)[3]
    assert loop["verdict"] == "not-offloadable" and "address of the loop variable" in loop["reasons"][0]


def test_a_bound_that_may_change_through_a_pointer_blocks_the_loop(tmp_path):
    found = verdicts(tmp_path, """
        #include <stdio.h>
        double a[64];
        void f(void) {
          int n; int *pn = &n;
          if (scanf("%d", &n) != 1) return;
          for (int i = 0; i < n; i++) a[i] = i;          /* fine: nothing writes through pn here */
          for (int i = 0; i < n; i++) { a[i] = i; *pn = 3; }
        }""")
    assert found[7]["verdict"] == "parallel"
    assert found[8]["verdict"] == "not-offloadable"


def test_a_scalar_written_through_a_pointer_inside_the_loop(tmp_path):
    loop = verdicts(tmp_path, """
        double a[64];
        void f(void) {
          double x = 1; double *px = &x;
          for (int i = 0; i < 64; i++) { a[i] = x; *px = a[i] + 1; }
        }""")[5]
    assert loop["verdict"] == "sequential" and "may point to it" in " ".join(loop["reasons"])


def test_a_global_scalar_read_while_writing_through_a_parameter_is_in_the_no_alias_check(tmp_path):
    loop = verdicts(tmp_path, """
        double scale;
        void f(int n, double *y) { for (int i = 0; i < n; i++) y[i] = scale * i; }
        """)[3]
    assert loop["verdict"] == "parallel"
    assert loop["conditions"] == [{"kind": "no-alias", "vars": ["scale", "y"]}]


def test_struct_fields_are_checked_at_run_time_unless_a_local_struct_holds_them(tmp_path):
    found = verdicts(tmp_path, """
        struct soa { int n; double *x, *y; };
        void f(struct soa *p) { for (int i = 0; i < p->n; i++) p->x[i] += p->y[i]; }
        void g(struct soa s) { for (int i = 0; i < s.n; i++) s.x[i] += s.y[i]; }
        """)
    assert found[3]["conditions"] == [{"kind": "no-alias", "vars": ["p->x", "p->y"]},
                                      {"kind": "not-written", "vars": ["p->n", "p->x", "p->y"]}]
    assert found[4]["conditions"] == [{"kind": "no-alias", "vars": ["s.x", "s.y"]}]
    assert found[3]["reads"] == ["p->x", "p->y"] and found[3]["writes"] == ["p->x"]
    assert any("local `restrict` pointers" in h for h in found[3]["hints"])


def test_a_sequential_loop_through_a_changing_field_names_it_once_with_a_witness(tmp_path):
    loop = verdicts(tmp_path, """
        struct soa { int n; double *x, *y, *z; };
        void f(struct soa *p) {
          for (int i = 0; i < p->n; i++) { p->z[i] = p->x[i] + p->x[i + 1] * p->x[i]; p->x = p->y; }
        }""")[4]
    assert loop["verdict"] == "sequential"
    assert len(loop["reasons"]) == 1 and "p->x" in loop["reasons"][0] and "and 2 more" in loop["reasons"][0]
    assert "i=0" in loop["reasons"][0] and "i=1" in loop["reasons"][0]
    assert loop["dependences"] == [{"var": "p->x", "kind": "flow", "source": f"{tmp_path}/case.c:4:79",
                                    "sink": f"{tmp_path}/case.c:4:46", "iterations": [0, 1], "distance": 1}]


def test_a_pointer_through_a_loaded_pointer_is_loaded_with_its_place_checked(tmp_path):
    loop = verdicts(tmp_path, CASES["a_field_through_another_loaded_pointer_is_loaded_too"][0])[4]
    assert loop["conditions"] == [{"kind": "not-written", "vars": ["m->g", "m->g->u", "m->n"]}]
    assert loop["writes"] == ["m->g->u"]


def test_a_pointer_too_deep_to_follow_gets_a_hint(tmp_path):
    loop = verdicts(tmp_path, CASES["a_chain_of_four_loaded_pointers_is_not_followed"][0])[3]
    assert loop["hints"] == ["copy `a->b->c->d->x` into a local `restrict` pointer before the loop"]


def test_private_arrays_are_listed(tmp_path):
    loop = verdicts(tmp_path, CASES["scratch_array_written_first_is_private"][0])[4]
    assert loop["private"] == ["t"] and loop["lastprivate"] == [] and loop["conditions"] == []
    loop = verdicts(tmp_path, CASES["scratch_array_read_after_the_loop_is_lastprivate"][0])[4]
    assert loop["private"] == ["t"] and loop["lastprivate"] == ["t"]


def test_a_scalar_whose_address_is_taken_joins_the_check_of_a_loaded_pointer(tmp_path):
    found = verdicts(tmp_path, """
        #include <stdio.h>
        #include <stdlib.h>
        struct grid { double *u; };
        int main(void) {
          int n;
          if (scanf("%d", &n) != 1 || n < 1) return 1;
          struct grid g = { malloc(sizeof(double) * n) };
          for (int i = 0; i < n; i++) g.u[i] = i;
          printf("%f\\n", g.u[n - 1]);
          return 0;
        }""")
    assert found[9]["verdict"] == "parallel"
    assert found[9]["conditions"] == [{"kind": "no-alias", "vars": ["g.u", "n"]}]     # g.u may hold &n
