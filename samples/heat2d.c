/* Exercises: 2-D 5-point Jacobi heat stencil on static global grids inside a time loop. */
#include <stdio.h>
#include <math.h>

#ifndef NX
#define NX 128
#endif
#ifndef NY
#define NY 128
#endif
#ifndef STEPS
#define STEPS 50
#endif

double u[NY][NX], v[NY][NX];

int main(void)
{
    const double alpha = 0.2;
    double total = 0.0;

    /* initial temperature: a warm bump plus a ripple along x */
    for (int i = 0; i < NY; i++)
        for (int j = 0; j < NX; j++) {
            double di = i - NY / 3, dj = j - NX / 2;
            u[i][j] = exp(-0.002 * (di * di + dj * dj)) + 0.01 * (j % 9);
            v[i][j] = u[i][j];
        }

    for (int t = 0; t < STEPS; t++) {
        /* new temperature from the old one */
        for (int i = 1; i < NY - 1; i++)
            for (int j = 1; j < NX - 1; j++)
                v[i][j] = u[i][j] + alpha * (u[i - 1][j] + u[i + 1][j]
                                             + u[i][j - 1] + u[i][j + 1] - 4.0 * u[i][j]);
        /* copy the new values back into u */
        for (int i = 1; i < NY - 1; i++)
            for (int j = 1; j < NX - 1; j++)
                u[i][j] = v[i][j];
    }

    for (int i = 0; i < NY; i++)
        for (int j = 0; j < NX; j++)
            total += u[i][j] * (1 + (i + j) % 3);

    printf("checksum %.10e\n", total);
    return 0;
}
