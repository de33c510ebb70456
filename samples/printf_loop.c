/* Exercises: loops that print or break early (not offloadable) next to pure compute loops, on local arrays. */
#include <stdio.h>
#include <math.h>

#ifndef N
#define N 16
#endif

int main(void)
{
    double a[N], b[N];
    double sum = 0.0;
    int first = -1;
    int i;

    for (i = 0; i < N; i++)
        a[i] = sqrt(1.0 + i) + 0.5 * (i % 4);

    /* computes and prints each element */
    for (i = 0; i < N; i++) {
        b[i] = a[i] * a[i] - 1.0;
        printf("b[%d] = %.6f\n", i, b[i]);
    }

    /* pure compute loop next to it */
    for (i = 0; i < N; i++)
        sum += 0.5 * b[i] + a[i];

    /* printing outer loop around a pure inner loop */
    for (i = 0; i < 4; i++) {
        double row = 0.0;
        for (int j = 0; j < N; j++)
            row += a[j] * (i + 1);
        printf("row %d %.6f\n", i, row);
    }

    /* search with an early exit */
    for (i = 0; i < N; i++)
        if (b[i] > 10.0) {
            first = i;
            break;
        }

    printf("first above 10: %d\n", first);
    printf("checksum %.10e\n", sum + first);
    return 0;
}
