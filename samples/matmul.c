/* Exercises: dense matrix product on static global 2-D arrays (i/j/k nest, array vs scalar accumulation). */
#include <stdio.h>
#include <math.h>

#ifndef N
#define N 128
#endif

double A[N][N], B[N][N], C[N][N], D[N][N];

int main(void)
{
    int i, j, k;
    double sum = 0.0;

    /* position-dependent inputs */
    for (i = 0; i < N; i++)
        for (j = 0; j < N; j++) {
            A[i][j] = sin(0.01 * (i + 2 * j)) + (i % 5);
            B[i][j] = cos(0.02 * (i - j)) + 0.5 * (j % 3);
        }

    /* C = A * B, accumulating straight into the array element */
    for (i = 0; i < N; i++)
        for (j = 0; j < N; j++) {
            C[i][j] = 0.0;
            for (k = 0; k < N; k++)
                C[i][j] += A[i][k] * B[k][j];
        }

    /* D = A * B again, accumulating into a scalar first */
    for (i = 0; i < N; i++)
        for (j = 0; j < N; j++) {
            double s = 0.0;
            for (k = 0; k < N; k++)
                s += A[i][k] * B[k][j];
            D[i][j] = s;
        }

    /* checksum: weighted sum of both products */
    for (i = 0; i < N; i++)
        for (j = 0; j < N; j++)
            sum += (C[i][j] + D[i][j]) * (1.0 + 0.001 * ((i + j) % 4));

    printf("checksum %.10e\n", sum);
    return 0;
}
