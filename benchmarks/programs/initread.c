/* One large initialisation on the device, then the host reads it all back (into pages it
 * never touched before: fresh) and folds it. Usage: initread N */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    double *a = malloc(n * sizeof *a);
    for (long i = 0; i < n; i++)
        a[i] = (double)(i % 1000) * 0.5;
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum = sum * 0.999999 + a[i];
    printf("%.6e\n", sum);
    free(a);
    return 0;
}
