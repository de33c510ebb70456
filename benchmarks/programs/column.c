/* A 2-D stencil on an N x N grid, T time steps, with a host loop between steps that reads
 * one column (one element of every row): the case for eager copy-back. Usage: column N T */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1024;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    double *u = malloc(n * n * sizeof *u), *v = malloc(n * n * sizeof *v);
    unsigned seed = 3;
    for (long k = 0; k < n * n; k++) {
        seed = seed * 1103515245u + 12345u;
        u[k] = v[k] = (double)(seed >> 16 & 255);
    }
    double edge = 0;
    for (int t = 0; t < steps; t++) {
        for (long i = 1; i < n - 1; i++)
            for (long j = 1; j < n - 1; j++)
                v[i * n + j] = 0.25 * (u[(i - 1) * n + j] + u[(i + 1) * n + j] + u[i * n + j - 1] + u[i * n + j + 1]);
        double *swap = u;
        u = v;
        v = swap;
        for (long i = 0; i < n; i++)
            edge = edge * 0.5 + u[i * n + n / 2];
    }
    printf("%.6e\n", edge);
    free(u);
    free(v);
    return 0;
}
