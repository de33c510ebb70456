/* A 2-D five-point stencil on an N x N heap grid (N*N elements), T time steps with a pointer
 * swap; the host fills the grid first and folds it at the end. Usage: stencil2d N T */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1024;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    double *u = malloc(n * n * sizeof *u), *v = malloc(n * n * sizeof *v);
    unsigned seed = 99;
    for (long k = 0; k < n * n; k++) {
        seed = seed * 1103515245u + 12345u;
        u[k] = v[k] = (double)(seed >> 16 & 255);
    }
    for (int t = 0; t < steps; t++) {
        for (long i = 1; i < n - 1; i++)
            for (long j = 1; j < n - 1; j++)
                v[i * n + j] = 0.2 * (u[i * n + j] + u[(i - 1) * n + j] + u[(i + 1) * n + j] +
                                      u[i * n + j - 1] + u[i * n + j + 1]);
        double *swap = u;
        u = v;
        v = swap;
    }
    double sum = 0;
    for (long k = 0; k < n * n; k++)
        sum = sum * 0.999999 + u[k];
    printf("%.6e\n", sum);
    free(u);
    free(v);
    return 0;
}
