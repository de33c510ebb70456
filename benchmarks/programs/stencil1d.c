/* A 1-D three-point stencil over two heap arrays of N doubles, T time steps with a pointer
 * swap; the host fills the grid first and sums it at the end (both loops carry a value, so
 * they stay on the host). Usage: stencil1d N T */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    unsigned seed = 12345;
    for (long i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        a[i] = b[i] = (double)(seed >> 16 & 1023);
    }
    for (int t = 0; t < steps; t++) {
        for (long i = 1; i < n - 1; i++)
            b[i] = 0.25 * a[i - 1] + 0.5 * a[i] + 0.25 * a[i + 1];
        double *swap = a;
        a = b;
        b = swap;
    }
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum = sum * 0.999999 + a[i];
    printf("%.6e\n", sum);
    free(a);
    free(b);
    return 0;
}
