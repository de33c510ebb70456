/* Exercises: loop-carried dependences: inclusive prefix sum (array) and a scalar recurrence. */
#include <stdio.h>
#include <math.h>

#ifndef N
#define N 100000
#endif

double a[N], s[N], e[N];

int main(void)
{
    double x = 0.0;
    double total = 0.0;

    for (int i = 0; i < N; i++)
        a[i] = 0.5 + 0.25 * sin(0.01 * i) + 0.125 * (i % 3);

    /* inclusive prefix sum: s[i] needs s[i-1] */
    s[0] = a[0];
    for (int i = 1; i < N; i++)
        s[i] = s[i - 1] + a[i];

    /* exponentially smoothed copy: x carries from one iteration to the next */
    for (int i = 0; i < N; i++) {
        x = x * 0.5 + a[i];
        e[i] = x;
    }

    for (int i = 0; i < N; i++)
        total += s[i] / N + e[i];

    printf("checksum %.10e\n", total);
    return 0;
}
