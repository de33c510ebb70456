/* Exercises: saxpy through pointer parameters without restrict (may alias) and with restrict. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#ifndef N
#define N 200000
#endif
#ifndef REPS
#define REPS 3
#endif

/* x and y may overlap: parallel only if they do not alias */
void saxpy(int n, float a, const float *x, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] = a * x[i] + y[i];
}

/* restrict promises x and y do not overlap */
void saxpy_r(int n, float a, const float *restrict x, float *restrict y)
{
    for (int i = 0; i < n; i++)
        y[i] = a * x[i] + y[i];
}

int main(void)
{
    int i, r;
    float *x = malloc(N * sizeof(float));
    float *y = malloc(N * sizeof(float));
    double sum = 0.0;

    if (x == NULL || y == NULL)
        return 1;

    for (i = 0; i < N; i++) {
        x[i] = (float)(0.5 * sin(0.001 * i)) + 0.1f * (float)(i % 10);
        y[i] = 0.25f * (float)(i % 17) - 1.0f;
    }

    /* repeated calls: the loop calls a helper that writes through a pointer */
    for (r = 0; r < REPS; r++)
        saxpy(N, 0.5f, x, y);

    saxpy_r(N, -0.25f, x, y);

    for (i = 0; i < N; i++)
        sum += y[i];

    printf("checksum %.10e\n", sum);
    free(x);
    free(y);
    return 0;
}
