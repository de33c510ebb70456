/* A region that writes every other row of an N x N grid the host filled, T times; the host
 * folds the whole grid at the end. Usage: everyother N T */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1024;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    double *g = malloc(n * n * sizeof *g);
    unsigned seed = 7;
    for (long k = 0; k < n * n; k++) {
        seed = seed * 1103515245u + 12345u;
        g[k] = (double)(seed >> 16 & 255);
    }
    for (int t = 0; t < steps; t++)
        for (long i = 0; i < n; i += 2)
            for (long j = 0; j < n; j++)
                g[i * n + j] = g[i * n + j] * 0.5 + (double)t;
    double sum = 0;
    for (long k = 0; k < n * n; k++)
        sum = sum * 0.999999 + g[k];
    printf("%.6e\n", sum);
    free(g);
    return 0;
}
