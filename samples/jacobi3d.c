/* Exercises: 3-D 7-point Jacobi stencil on malloc'ed linearised grids, pointer swap each time step. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#ifndef NX
#define NX 40
#endif
#ifndef NY
#define NY 36
#endif
#ifndef NZ
#define NZ 32
#endif
#ifndef STEPS
#define STEPS 20
#endif

int main(void)
{
    int i, j, k, t;
    const double c0 = 0.4, c1 = 0.1;
    double sum = 0.0;
    double *grid0 = malloc(sizeof(double) * NX * NY * NZ);
    double *grid1 = malloc(sizeof(double) * NX * NY * NZ);
    double *a, *b;

    if (grid0 == NULL || grid1 == NULL)
        return 1;

    /* both grids start equal, so the fixed boundary is the same in each */
    for (i = 0; i < NX; i++)
        for (j = 0; j < NY; j++)
            for (k = 0; k < NZ; k++) {
                grid0[(i * NY + j) * NZ + k] = cos(0.05 * i) * sin(0.07 * j + 0.03 * k) + 0.25 * (k % 4);
                grid1[(i * NY + j) * NZ + k] = grid0[(i * NY + j) * NZ + k];
            }

    a = grid0;
    b = grid1;
    for (t = 0; t < STEPS; t++) {
        for (i = 1; i < NX - 1; i++)
            for (j = 1; j < NY - 1; j++)
                for (k = 1; k < NZ - 1; k++)
                    b[(i * NY + j) * NZ + k] = c0 * a[(i * NY + j) * NZ + k]
                        + c1 * (a[((i - 1) * NY + j) * NZ + k] + a[((i + 1) * NY + j) * NZ + k]
                                + a[(i * NY + j - 1) * NZ + k] + a[(i * NY + j + 1) * NZ + k]
                                + a[(i * NY + j) * NZ + k - 1] + a[(i * NY + j) * NZ + k + 1]);
        double *tmp = a;
        a = b;
        b = tmp;
    }

    /* a holds the newest grid */
    for (i = 0; i < NX; i++)
        for (j = 0; j < NY; j++)
            for (k = 0; k < NZ; k++)
                sum += a[(i * NY + j) * NZ + k] * (1 + (i + 2 * j + 3 * k) % 5);

    printf("checksum %.10e\n", sum);
    free(grid0);
    free(grid1);
    return 0;
}
