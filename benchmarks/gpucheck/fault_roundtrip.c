/* The round trip of a host fault: a region writes the first n doubles of a watched array on
 * the device, then host code reads them, so each of their pages faults and is copied back.
 * argv: n, rounds, and a file the host read's seconds are appended to. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_DOUBLES (4 << 17)

double a[MAX_DOUBLES] __attribute__((aligned(4096)));

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 512;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    double s = 0.0, seconds = 0.0;

    if (n < 1 || n > MAX_DOUBLES || rounds < 1)
        return 2;
    a[0] = 1.0;
    for (int i = 1; i < MAX_DOUBLES; i++)
        a[i] = a[i - 1] * 0.5 + 1.0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < n; i++)
            a[i] = a[i] * 0.5 + r;
        double started = now();
        for (int i = 0; i < n; i++)
            s = s * 0.999 + a[i];
        seconds += now() - started;
    }
    if (argc > 3) {
        FILE *f = fopen(argv[3], "a");
        if (f) {
            fprintf(f, "%.9f\n", seconds);
            fclose(f);
        }
    }
    printf("checksum %.10e\n", s);
    return 0;
}
