/* Exercises: malloc'ed 2-D grids with linearised a[i*m + j] indexing passed to helpers (alias, restrict, pure call). */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#ifndef N
#define N 200
#endif
#ifndef M
#define M 150
#endif
#ifndef ITERS
#define ITERS 5
#endif

/* pure: only computes a value from its arguments */
static double weight(int i, int j)
{
    return sin(0.05 * i) * cos(0.03 * j) + 0.01 * ((i + 2 * j) % 5);
}

/* 5-point average of the interior; in and out may alias (no restrict) */
static void smooth(int n, int m, const double *in, double *out)
{
    int i, j;

    for (i = 1; i < n - 1; i++)
        for (j = 1; j < m - 1; j++)
            out[i * m + j] = 0.2 * (in[i * m + j] + in[(i - 1) * m + j] + in[(i + 1) * m + j]
                                    + in[i * m + j - 1] + in[i * m + j + 1]);
}

/* a = s * b, with restrict-qualified pointers */
static void scale(int n, int m, double *restrict a, const double *restrict b, double s)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
            a[i * m + j] = s * b[i * m + j];
}

int main(void)
{
    double *g = malloc(sizeof(double) * N * M);
    double *h = malloc(sizeof(double) * N * M);
    double sum = 0.0;

    if (g == NULL || h == NULL)
        return 1;

    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            g[i * M + j] = weight(i, j);
            h[i * M + j] = g[i * M + j];
        }

    /* ping-pong smoothing through the helper */
    for (int it = 0; it < ITERS; it++) {
        smooth(N, M, g, h);
        smooth(N, M, h, g);
    }

    scale(N, M, h, g, 0.5);

    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++)
            sum += h[i * M + j] * weight(j, i);

    printf("checksum %.10e\n", sum);
    free(g);
    free(h);
    return 0;
}
