/* The 1-D three-point stencil of issue 12 as it was reported: two heap arrays of N doubles,
 * filled by a parallel loop, T time steps with a pointer swap, the host sums the result (a
 * `+` reduction, offloaded too). Usage: swap_steps N T */
#include <stdio.h>
#include <stdlib.h>

static void step(const double *a, double *b, long n)
{
    for (long i = 1; i < n - 1; i++)
        b[i] = 0.25 * a[i - 1] + 0.5 * a[i] + 0.25 * a[i + 1];
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    for (long i = 0; i < n; i++)
        a[i] = b[i] = (double)(i % 17);
    for (int t = 0; t < steps; t++) {
        step(a, b, n);
        double *s = a; a = b; b = s;
    }
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += a[i];
    printf("%.6f\n", sum);
    free(a); free(b);
    return 0;
}
