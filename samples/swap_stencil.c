/* Exercises: a Jacobi time loop on heap grids that swaps its two pointers every step, with
 * host code on both sides: random initial values (rand, so that loop stays on the CPU) and a
 * position-weighted checksum that carries a scalar (so it stays on the CPU too). Only the
 * time steps run on the GPU: the runtime must move the grid in once and back once. */
#include <stdio.h>
#include <stdlib.h>

#ifndef N
#define N 256
#endif
#ifndef STEPS
#define STEPS 40
#endif

int main(void)
{
    double *a = malloc(sizeof(double) * N * N), *b = malloc(sizeof(double) * N * N);
    double s = 0.0;

    if (a == NULL || b == NULL)
        return 1;
    srand(7);
    for (int k = 0; k < N * N; k++) {
        a[k] = rand() % 100 / 10.0;
        b[k] = a[k];
    }
    for (int t = 0; t < STEPS; t++) {
        for (int i = 1; i < N - 1; i++)
            for (int j = 1; j < N - 1; j++)
                b[i * N + j] = 0.25 * (a[(i - 1) * N + j] + a[(i + 1) * N + j]
                                       + a[i * N + j - 1] + a[i * N + j + 1]);
        double *swap = a;
        a = b;
        b = swap;
    }
    for (int k = 0; k < N * N; k++)
        s = 0.999 * s + a[k];
    printf("checksum %.10e\n", s);
    free(a);
    free(b);
    return 0;
}
