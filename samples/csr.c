/* Exercises: a sparse matrix-vector product whose CSR matrix is a struct (row pointers, column
 * indices and values are fields), so the inner loop's bounds are loaded from memory; the
 * matrix is built with a running counter, and a power iteration uses the product. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#ifndef G
#define G 96              /* the matrix is the G*G-point grid's 5-point operator */
#endif
#ifndef ITERS
#define ITERS 25
#endif

struct csr {
    int nrows, nnz;
    int *rowptr;
    int *col;
    double *val;
};

static void spmv(const struct csr *A, const double *x, double *y)
{
    for (int i = 0; i < A->nrows; i++) {
        double sum = 0.0;
        for (int k = A->rowptr[i]; k < A->rowptr[i + 1]; k++)
            sum += A->val[k] * x[A->col[k]];
        y[i] = sum;
    }
}

int main(void)
{
    struct csr A;
    int n = G * G;
    A.nrows = n;
    A.rowptr = malloc((n + 1) * sizeof(int));
    A.col = malloc(5 * n * sizeof(int));
    A.val = malloc(5 * n * sizeof(double));
    double *x = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double));
    if (!A.rowptr || !A.col || !A.val || !x || !y)
        return 1;

    /* rows of a variable-coefficient 5-point operator; nnz counts the entries so far */
    int nnz = 0;
    for (int r = 0; r < n; r++) {
        int gi = r / G, gj = r % G;
        double c = 4.0 + 0.5 * sin(0.1 * gi) * cos(0.13 * gj);
        A.rowptr[r] = nnz;
        if (gi > 0) { A.col[nnz] = r - G; A.val[nnz] = -1.0; nnz++; }
        if (gj > 0) { A.col[nnz] = r - 1; A.val[nnz] = -1.0; nnz++; }
        A.col[nnz] = r; A.val[nnz] = c; nnz++;
        if (gj < G - 1) { A.col[nnz] = r + 1; A.val[nnz] = -1.0; nnz++; }
        if (gi < G - 1) { A.col[nnz] = r + G; A.val[nnz] = -1.0; nnz++; }
    }
    A.rowptr[n] = nnz;
    A.nnz = nnz;

    for (int i = 0; i < n; i++)
        x[i] = 1.0 + 0.01 * (i % 17);

    double lambda = 0.0;
    for (int it = 0; it < ITERS; it++) {
        spmv(&A, x, y);
        double norm = 0.0;
        for (int i = 0; i < n; i++)
            norm += y[i] * y[i];
        norm = sqrt(norm);
        lambda = norm;
        for (int i = 0; i < n; i++)
            x[i] = y[i] / norm;
    }

    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += x[i] * (i % 5);
    printf("nnz %d eigenvalue estimate %.10e\n", A.nnz, lambda);
    printf("checksum %.10e\n", lambda + sum);
    free(A.rowptr);
    free(A.col);
    free(A.val);
    free(x);
    free(y);
    return 0;
}
