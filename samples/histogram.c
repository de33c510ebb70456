/* Exercises: indirect (non-affine) subscripts: a histogram written through an index array, and a gather. */
#include <stdio.h>

#ifndef N
#define N 100000
#endif
#ifndef NBINS
#define NBINS 61
#endif

int bin[N];
int val[N];
int hist[NBINS];

int main(void)
{
    int i;
    long check = 0;

    for (i = 0; i < NBINS; i++)
        hist[i] = 0;

    /* scattered bin numbers (7919 is prime) */
    for (i = 0; i < N; i++)
        bin[i] = (i * 7919) % NBINS;

    /* the histogram itself: writes through bin[] */
    for (i = 0; i < N; i++)
        hist[bin[i]]++;

    /* gather: only reads through bin[] */
    for (i = 0; i < N; i++)
        val[i] = 2 * hist[bin[i]] + i % 3;

    for (i = 0; i < 8; i++)
        printf("bin %2d: %d\n", i, hist[i]);

    for (i = 0; i < N; i++)
        check += (long)val[i] * (1 + bin[i]);

    printf("checksum %.10e\n", (double)check);
    return 0;
}
