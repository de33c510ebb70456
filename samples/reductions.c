/* Exercises: scalar reductions: sum (+= and -=), max written three ways, min, product. */
#include <stdio.h>
#include <math.h>

#ifndef N
#define N 20000
#endif

double x[N], y[N];

int main(void)
{
    int i;
    double dot = 0.0, drift = 0.0;
    double m = 0.0, m2 = 0.0, m3 = 0.0;
    double mn = 1.0e300, p = 1.0;

    for (i = 0; i < N; i++) {
        x[i] = sin(0.001 * i) * (1 + i % 7) - 0.5;
        y[i] = cos(0.003 * i) + 0.1 * (i % 11);
    }

    /* dot product, plus a subtracting sum */
    for (i = 0; i < N; i++) {
        dot += x[i] * y[i];
        drift -= 0.5 * y[i];
    }

    /* max-norm of x via fmax */
    for (i = 0; i < N; i++)
        m = fmax(m, fabs(x[i]));

    /* max-norm of y via the conditional operator */
    for (i = 0; i < N; i++)
        m2 = (fabs(y[i]) > m2) ? fabs(y[i]) : m2;

    /* max-norm of x - y via an if */
    for (i = 0; i < N; i++) {
        double d = x[i] - y[i];
        if (fabs(d) > m3)
            m3 = fabs(d);
    }

    /* minimum of x + y */
    for (i = 0; i < N; i++)
        mn = fmin(mn, x[i] + y[i]);

    /* product of factors close to one */
    for (i = 0; i < N; i++)
        p *= 1.0 + 1.0e-5 * (x[i] - y[i]);

    printf("dot %.10e drift %.10e max %.10e %.10e %.10e min %.10e prod %.10e\n",
           dot, drift, m, m2, m3, mn, p);
    printf("checksum %.10e\n", dot + drift + m + m2 + m3 + mn + p);
    return 0;
}
