"""The loop-extent scanner finds exactly the text of a `for` statement in the original source,
whatever its body, and refuses loops whose text a macro or a conditional directive decides."""

import textwrap

import pytest

from offloader.hostprog.extent import ExtentError, LoopExtents


def loop_text(code: str, line: int | None = None, column: int | None = None) -> str:
    """The span found for the `for` marked `@` (removed), or at (line, column)."""
    code = textwrap.dedent(code).lstrip("\n")
    if line is None:
        at = code.index("@")
        code = code[:at] + code[at + 1:]
        line = code.count("\n", 0, at) + 1
        column = at - (code.rfind("\n", 0, at) + 1) + 1
    start, end = LoopExtents(code).of_for(line, column)
    return code[start:end]


def test_nested_unbraced_fors_end_at_the_innermost_statement():
    text = loop_text("""
        void f(double a[8][8]) {
            int i, j;
            @for (i = 0; i < 8; i++)
                for (j = 0; j < 8; j++)
                    a[i][j] = (i < j) ? i : j;
            a[0][0] = 1;
        }
    """)
    assert text.startswith("for (i = 0;") and text.endswith("? i : j;")


def test_if_else_chains_belong_to_the_body_and_a_later_else_does_not():
    text = loop_text("""
        void f(int *a, int n, int c) {
            if (c)
                @for (int i = 0; i < n; i++)
                    if (a[i] > 0) a[i] = 1;
                    else if (a[i] < 0) a[i] = -1;
                    else { a[i] = 0; }
            else
                a[0] = 2;
        }
    """)
    assert text.endswith("else { a[i] = 0; }")


def test_an_if_without_else_leaves_the_outer_else_outside():
    text = loop_text("""
        void f(int *a, int n, int c) {
            if (c) @for (int i = 0; i < n; i++) if (a[i]) a[i] = 0; else a[0] = 2;
        }
    """)
    # both `else`s bind to the inner `if`, so the whole line after `for` is the loop
    assert text.endswith("else a[0] = 2;")
    text = loop_text("""
        void f(int *a, int n, int c) {
            if (c) @for (int i = 0; i < n; i++) a[i] = 0; else a[0] = 2;
        }
    """)
    assert text.endswith("a[i] = 0;")


def test_do_while_while_and_switch_bodies():
    text = loop_text("""
        void f(int *a, int n) {
            @for (int i = 0; i < n; i++)
                do { a[i]--; } while (a[i] > 10);
            n = 0;
        }
    """)
    assert text.endswith("while (a[i] > 10);")
    text = loop_text("""
        void f(int *a, int n) {
            @for (int i = 0; i < n; i++) while (a[i] > 3) a[i] /= 2;
        }
    """)
    assert text.endswith("a[i] /= 2;")
    text = loop_text("""
        void f(int *a, int n) {
            @for (int i = 0; i < n; i++)
                switch (a[i]) { case 1: a[i] = 0; break; default: a[i] = 1; }
            n = 1;
        }
    """)
    assert text.endswith("default: a[i] = 1; }")


def test_labels_in_the_body_statement():
    text = loop_text("""
        void f(int *a, int n) {
            @for (int i = 0; i < n; i++) again: a[i]++;
        }
    """)
    assert text.endswith("again: a[i]++;")


def test_comments_strings_and_characters_hide_braces_semicolons_and_for():
    text = loop_text("""
        void f(char **s, int n) {
            @for (int i = 0; i < n /* ; } for ( */; i++) // ; { }
            {
                s[i] = "};for(;;){"; /* } */
                s[i][0] = '}';  s[i][1] = '\\''; s[i][2] = '"';
                // a } in a line comment \\
                   continued } still comment
            }
            n = 0;
        }
    """)
    assert text.endswith("still comment\n    }")


def test_preprocessor_lines_inside_the_loop_are_skipped():
    text = loop_text("""
        void f(double *a, int n) {
            @for (int i = 0; i < n; i++) {
        #define HALF(x) ((x) / 2) /* { */
        #if 1
                a[i] = HALF(a[i]);
        #endif
            }
        }
    """)
    assert text.endswith("#endif\n    }")


def test_statement_expressions_and_compound_literals_nest():
    text = loop_text("""
        void f(int *a, int n) {
            @for (int i = 0; i < n; i++) a[i] = ({ int t = (int[]){1, 2}[i % 2]; t; });
            n = 0;
        }
    """)
    assert text.endswith("t; });")


def test_an_apostrophe_in_disabled_code_does_not_hide_the_rest_of_the_file():
    text = loop_text("""
        #if 0
        it's not C, and the compiler does not mind
        #endif
        void f(int *a) { @for (int i = 0; i < 4; i++) a[i] = '"'; }
    """)
    assert text.endswith("a[i] = '\"';")


def test_digraph_braces():
    assert loop_text("void f(int *a) { @for (int i = 0; i < 4; i++) <% a[i] = 0; %> }").endswith("%>")


def test_a_loop_written_by_a_macro_is_refused():
    with pytest.raises(ExtentError, match="macro"):
        loop_text("""
            #define FOR_I(n) for (int i = 0; i < (n); i++)
            void f(int *a) { @FOR_I(4) a[i] = 0; }
        """)


def test_a_conditional_directive_crossing_the_loop_is_refused():
    with pytest.raises(ExtentError, match="#if"):
        loop_text("""
            void f(int *a, int n) {
                @for (int i = 0; i < n; i++)
            #ifdef TWICE
                    a[i] *= 2;
            #else
                    a[i] *= 3;
            #endif
            }
        """)


@pytest.mark.parametrize("code, line, column, words", [
    ("void f(void) { for (;;) { x();\n", 1, 16, "ends inside"),
    ("int x;\n", 5, 1, "past the end"),
    ("int x;\n", 1, 40, "past the end"),
    ("void f(void) { /* for */ }\n", 1, 19, "not a `for`"),
    ("void f(int *a) { for (int i = 0; i < 4; i++) a[i] = ); }\n", 1, 18, "unbalanced"),
])
def test_broken_or_missing_loops_raise_extent_errors(code, line, column, words):
    with pytest.raises(ExtentError, match=words):
        loop_text(code, line, column)
