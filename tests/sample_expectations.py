"""Expected analyzer verdicts for every for-loop in samples/, written by hand from the code."""
from dataclasses import dataclass, field  # noqa: F401  (field kept for callers extending Expect)

PAR = "parallel"
SEQ = "sequential"
NOFF = "not-offloadable"


@dataclass(frozen=True)
class Expect:
    line: int            # 1-based line of the `for` keyword in the sample
    var: str             # loop variable
    verdict: str         # "parallel" | "sequential" | "not-offloadable"
    reductions: tuple = ()     # tuple of (var, op) with op in "+", "*", "min", "max"; for parallel loops
    conditions: tuple = ()     # tuple of sorted var-name tuples for "no-alias" conditions, e.g. (("in", "out"),)
    reason_words: tuple = ()   # words that must appear in the joined reasons (e.g. the array/scalar/function name)
    why: str = ""              # one sentence: why this verdict (for humans)
    not_written: tuple = ()    # sorted names of values loaded from memory (struct fields) whose bytes the
                               # run-time check must find outside everything the loop writes ("not-written")
    private: tuple = ()        # names that must be listed private (scratch arrays included)


EXPECTED = {
    "matmul.c": [
        Expect(17, "i", PAR, why="init: each i writes only rows A[i][*], B[i][*]; j is private."),
        Expect(18, "j", PAR, why="init: each j writes only A[i][j], B[i][j]."),
        Expect(24, "i", PAR,
               why="each i writes only row C[i][*]; A and B are only read; j and k are private."),
        Expect(25, "j", PAR, why="each j writes only C[i][j]; k is private."),
        Expect(27, "k", SEQ, reason_words=("C",),
               why="C[i][j] is read and written by every k: an array-element accumulation is carried."),
        Expect(32, "i", PAR,
               why="each i writes only row D[i][*]; s is declared inside the j body, so private."),
        Expect(33, "j", PAR, why="s is local to the j body; each j writes only D[i][j]."),
        Expect(35, "k", PAR, reductions=(("s", "+"),),
               why="the only cross-iteration access is s += ..., a scalar + reduction."),
        Expect(41, "i", PAR, reductions=(("sum", "+"),),
               why="checksum: sum is only accumulated with +=; C and D are only read."),
        Expect(42, "j", PAR, reductions=(("sum", "+"),),
               why="checksum inner loop: sum += is a + reduction."),
    ],
    "heat2d.c": [
        Expect(23, "i", PAR, why="init: each i writes only row i of u and v; di, dj are private."),
        Expect(24, "j", PAR,
               why="init: v[i][j] reads the u[i][j] written in the same iteration only."),
        Expect(30, "t", SEQ, reason_words=("u",),
               why="step t+1 reads the u written by the copy nest of step t (v is carried too)."),
        Expect(32, "i", PAR, why="writes only v, reads only u: no conflict between i iterations."),
        Expect(33, "j", PAR, why="writes only v[i][j], reads only u."),
        Expect(37, "i", PAR, why="copy: u[i][j] = v[i][j] touches only row i of each array."),
        Expect(38, "j", PAR, why="copy: one element of u and of v per iteration."),
        Expect(42, "i", PAR, reductions=(("total", "+"),),
               why="checksum: total is only accumulated with +=."),
        Expect(43, "j", PAR, reductions=(("total", "+"),),
               why="checksum inner loop: total += is a + reduction."),
    ],
    "jacobi3d.c": [
        Expect(32, "i", PAR,
               why="init: grid0/grid1 are two single-assignment mallocs (distinct); each i owns plane i."),
        Expect(33, "j", PAR, why="init: each j owns row (i, j) of both grids; k is private."),
        Expect(34, "k", PAR, why="init: grid1 element copies the grid0 element written in the same iteration."),
        Expect(41, "t", SEQ, reason_words=("a", "b"),
               why="the pointer swap makes a and b carried scalars, and each step reads the previous grid."),
        Expect(42, "i", PAR, conditions=(("a", "b"),),
               why="writes b, reads a; a and b are reassigned (swapped) pointers, so only if they do not alias."),
        Expect(43, "j", PAR, conditions=(("a", "b"),),
               why="delinearised b[i][j][k] written, a only read; needs a and b not to alias."),
        Expect(44, "k", PAR, conditions=(("a", "b"),),
               why="one element of b per k, a only read; needs a and b not to alias."),
        Expect(55, "i", PAR, reductions=(("sum", "+"),),
               why="checksum: only reads a, sum is a + reduction (no write, so no alias condition)."),
        Expect(56, "j", PAR, reductions=(("sum", "+"),), why="checksum: sum += reduction."),
        Expect(57, "k", PAR, reductions=(("sum", "+"),), why="checksum: sum += reduction."),
    ],
    "reductions.c": [
        Expect(18, "i", PAR, why="init: each i writes only x[i] and y[i]."),
        Expect(24, "i", PAR, reductions=(("dot", "+"), ("drift", "+")),
               why="dot += and drift -= are both + reductions."),
        Expect(30, "i", PAR, reductions=(("m", "max"),), why="m = fmax(m, ...) is a max reduction."),
        Expect(34, "i", PAR, reductions=(("m2", "max"),),
               why="m2 = (e > m2) ? e : m2 is a max reduction."),
        Expect(38, "i", PAR, reductions=(("m3", "max"),),
               why="if (fabs(d) > m3) m3 = fabs(d) is a max reduction; d is declared in the body."),
        Expect(45, "i", PAR, reductions=(("mn", "min"),), why="mn = fmin(mn, ...) is a min reduction."),
        Expect(49, "i", PAR, reductions=(("p", "*"),), why="p *= ... is a * reduction."),
    ],
    "nbody.c": [
        Expect(23, "i", PAR, why="init: each i writes only the fields of p[i] (and reads them back)."),
        Expect(33, "t", SEQ, reason_words=("p",),
               why="each step reads the positions and velocities in p written by the previous step."),
        Expect(35, "i", PAR,
               why="writes only ax[i], ay[i], az[i]; p is only read; fx/fy/fz and temporaries are local."),
        Expect(37, "j", PAR, reductions=(("fx", "+"), ("fy", "+"), ("fz", "+")),
               why="continue is not an early exit; fx, fy, fz are + reductions, dx..inv are local."),
        Expect(54, "i", PAR, why="kick/drift: each i reads and writes only p[i] and reads ax/ay/az[i]."),
        Expect(65, "i", PAR, reductions=(("kin", "+"),), why="kinetic energy: kin += is a + reduction."),
        Expect(69, "i", PAR, reductions=(("pot", "+"),),
               why="potential energy: pot -= is a + reduction, p is only read."),
        Expect(70, "j", PAR, reductions=(("pot", "+"),),
               why="triangular inner loop: pot -= is a + reduction; dx, dy, dz are local."),
    ],
    "histogram.c": [
        Expect(20, "i", PAR, why="clears hist[i], one element per iteration."),
        Expect(24, "i", PAR, why="writes only bin[i]."),
        Expect(28, "i", SEQ, reason_words=("hist",),
               why="hist[bin[i]]++ writes through a non-affine subscript: iterations may hit the same bin."),
        Expect(32, "i", PAR,
               why="gather: hist is only read through bin[]; writes only val[i]."),
        Expect(35, "i", NOFF, reason_words=("printf",), why="calls printf."),
        Expect(38, "i", PAR, reductions=(("check", "+"),), why="checksum: check += is a + reduction."),
    ],
    "prefix_sum.c": [
        Expect(16, "i", PAR, why="init: writes only a[i]."),
        Expect(21, "i", SEQ, reason_words=("s",), why="s[i] reads s[i-1] written by the previous iteration."),
        Expect(25, "i", SEQ, reason_words=("x",),
               why="x = x*0.5 + a[i] reads the x of the previous iteration (not a reduction: x is stored to e[i])."),
        Expect(30, "i", PAR, reductions=(("total", "+"),), why="checksum: total += is a + reduction."),
    ],
    "printf_loop.c": [
        Expect(16, "i", PAR, why="init of the local array a: one element per iteration."),
        Expect(20, "i", NOFF, reason_words=("printf",), why="calls printf in every iteration."),
        Expect(26, "i", PAR, reductions=(("sum", "+"),), why="pure compute: sum += is a + reduction."),
        Expect(30, "i", NOFF, reason_words=("printf",),
               why="the outer loop body calls printf (its inner loop is pure)."),
        Expect(32, "j", PAR, reductions=(("row", "+"),),
               why="pure inner loop: row += is a + reduction, a is only read."),
        Expect(38, "i", NOFF, reason_words=("break",), why="leaves the loop early with break."),
    ],
    "linearised.c": [
        Expect(27, "i", PAR, conditions=(("in", "out"),),
               why="smooth: writes out, reads in (delinearised as 2-D); parameters without restrict may alias."),
        Expect(28, "j", PAR, conditions=(("in", "out"),),
               why="smooth: one out element per j, 1 <= j < m-1 proves in-bounds rows; needs no alias."),
        Expect(36, "i", PAR, why="scale: restrict a and b do not alias; each i writes row i of a."),
        Expect(37, "j", PAR, why="scale: one element of a per j, b only read; restrict, so no condition."),
        Expect(50, "i", PAR,
               why="init: g and h are single-assignment mallocs; weight() is pure; row i only."),
        Expect(51, "j", PAR, why="init: one element of g and h per j; weight() is pure."),
        Expect(57, "it", NOFF, reason_words=("smooth",),
               why="calls smooth(), which writes through its pointer argument out."),
        Expect(64, "i", PAR, reductions=(("sum", "+"),),
               why="checksum: h only read, weight() pure, sum += is a + reduction."),
        Expect(65, "j", PAR, reductions=(("sum", "+"),), why="checksum: sum += is a + reduction."),
    ],
    "saxpy.c": [
        Expect(16, "i", PAR, conditions=(("x", "y"),),
               why="writes y[i], reads x[i]; x and y are parameters without restrict, so they may overlap."),
        Expect(23, "i", PAR, why="same loop with restrict parameters: no alias condition needed."),
        Expect(37, "i", PAR, why="init: x and y are single-assignment mallocs; one element of each per i."),
        Expect(43, "r", NOFF, reason_words=("saxpy",),
               why="calls saxpy(), which writes through its pointer argument y."),
        Expect(48, "i", PAR, reductions=(("sum", "+"),), why="checksum: sum += is a + reduction."),
    ],
    "swap_stencil.c": [
        Expect(23, "k", NOFF, reason_words=("rand",), why="rand() changes hidden state at every call."),
        Expect(27, "t", SEQ, reason_words=("a", "b"),
               why="each step reads the grid the previous one wrote, through the swapped pointers."),
        Expect(28, "i", PAR, conditions=(("a", "b"),),
               why="writes row i of b, reads rows i-1..i+1 of a: separate unless a and b overlap."),
        Expect(29, "j", PAR, conditions=(("a", "b"),), why="writes b[i][j] only, reads a."),
        Expect(36, "k", SEQ, reason_words=("s",), why="s = 0.999*s + a[k] is not a reduction the runtime combines."),
    ],
    "particles.c": [
        Expect(43, "i", PAR, conditions=(("p->m", "p->vx", "p->vy", "p->x", "p->y"),),
               not_written=("p->m", "p->n", "p->vx", "p->vy", "p->x", "p->y"),
               why="the fields of *p are loaded once: no store of the loop can reach them unless the run-time "
                   "check finds *p inside an array it writes; each i touches element i of each array, which "
                   "must not overlap each other."),
        Expect(56, "i", PAR,
               why="s is a struct by value whose address is never taken: s.n and s.v cannot change, and s.v[i] "
                   "is one element per i; with one array there is nothing to check."),
        Expect(63, "i", PAR, reductions=(("e", "+"),),
               why="read-only through the loaded fields; e += is a + reduction; nothing written, nothing to check."),
        Expect(75, "i", PAR, conditions=(("p->m", "p->vx", "p->vy", "p->x", "p->y"),),
               not_written=("p->m", "p->n", "p->vx", "p->vy", "p->x", "p->y"),
               why="init through the loaded fields (p comes from a call): one element of each array per i."),
        Expect(84, "t", NOFF, reason_words=("step",), why="calls step(), which writes through p's fields."),
        Expect(92, "i", PAR, reductions=(("cx", "+"), ("cy", "+")),
               why="centre of mass: cx and cy are + reductions, the arrays are only read."),
    ],
    "csr.c": [
        Expect(24, "i", PAR, conditions=(("A->col", "A->rowptr", "A->val", "x", "y"),),
               not_written=("A->col", "A->nrows", "A->rowptr", "A->val"),
               why="row loop: writes only y[i]; the inner bounds A->rowptr[i], A->rowptr[i+1] are loaded from "
                   "memory the loop does not write; sum is declared in the body; y must not overlap the "
                   "matrix arrays or x, nor the struct *A."),
        Expect(26, "k", PAR, reductions=(("sum", "+"),),
               why="sum += is a + reduction; nothing is written, so no check."),
        Expect(46, "r", SEQ, reason_words=("nnz",),
               why="nnz++ counts the entries so far: each row starts where the previous one ended."),
        Expect(59, "i", PAR, why="init: x is a malloc of its own; one element per i."),
        Expect(63, "it", NOFF, reason_words=("spmv",), why="calls spmv(), which writes through its argument y."),
        Expect(66, "i", PAR, reductions=(("norm", "+"),), why="norm += is a + reduction."),
        Expect(70, "i", PAR, why="x and y are two mallocs; one element of each per i."),
        Expect(75, "i", PAR, reductions=(("sum", "+"),), why="checksum: sum += is a + reduction."),
    ],
    "blur.c": [
        Expect(21, "y", PAR, conditions=(("in", "out"),),
               why="interior: each y writes row y of out and reads rows y-1..y+1 of in (delinearised)."),
        Expect(22, "x", PAR, conditions=(("in", "out"),), why="one element of out per x, in only read."),
        Expect(24, "dy", PAR, reductions=(("s", "+"),), why="s += is a + reduction."),
        Expect(25, "dx", PAR, reductions=(("s", "+"),), why="s += is a + reduction."),
        Expect(31, "x", PAR, conditions=(("in", "out"),),
               why="out[x] is in row 0 and out[(h-1)*w + x] in row h-1: split into (row, column) digits, two "
                   "iterations never write one element (h == 1 makes them the same element of one iteration)."),
        Expect(37, "y", PAR, conditions=(("in", "out"),),
               why="out[y*w] and out[y*w + w-1] are columns 0 and w-1 of row y; the guard w >= 2 proves the "
                   "column digit w-1 lies in [0, w), so two iterations (two rows) never meet."),
        Expect(50, "y", PAR, why="init: a and b are two mallocs; row y of a only."),
        Expect(51, "x", PAR, why="init: one element of a per x."),
        Expect(54, "pass", NOFF, reason_words=("blur",), why="calls blur(), which writes through out."),
        Expect(62, "y", PAR, reductions=(("sum", "+"),), why="checksum: sum += is a + reduction."),
        Expect(63, "x", PAR, reductions=(("sum", "+"),), why="checksum: sum += is a + reduction."),
        Expect(65, "x", PAR, reductions=(("edge", "+"),), why="edge += is a + reduction, a only read."),
    ],
    "scratch.c": [
        Expect(20, "r", PAR, private=("coef",),
               why="coef is written (coef[m] = 0 for every m) before any read in every row, and not read "
                   "after the loop: a private scratch array, one copy per row."),
        Expect(21, "m", PAR, why="each m touches only coef[m]."),
        Expect(23, "j", SEQ, reason_words=("coef",),
               why="coef[m] += ... accumulates into one array element over j."),
        Expect(26, "j", PAR, why="coef is only read; one element of smooth per j; s is declared inside."),
        Expect(28, "m", PAR, reductions=(("s", "+"),), why="s += is a + reduction."),
        Expect(38, "m", PAR, why="init: row m of basis."),
        Expect(39, "j", PAR, why="init: one element of basis per j."),
        Expect(42, "r", PAR, why="init: row r of signal."),
        Expect(43, "j", PAR, why="init: one element of signal per j."),
        Expect(49, "r", PAR, reductions=(("sum", "+"),), why="checksum: sum += is a + reduction."),
        Expect(50, "j", PAR, reductions=(("sum", "+"),), why="checksum: sum += is a + reduction."),
    ],
}
