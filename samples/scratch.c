/* Exercises: a private scratch array: each row of a signal is projected on a few cosine modes
 * (the coefficients go to `coef`, a local array declared outside the row loop and fully
 * written before it is read in every row), then rebuilt from them, a low-pass filter. */
#include <stdio.h>
#include <math.h>

#ifndef ROWS
#define ROWS 2048
#endif
#ifndef LEN
#define LEN 256
#endif
#define MODES 8

double signal[ROWS][LEN], smooth[ROWS][LEN], basis[MODES][LEN];

static void lowpass(int rows)
{
    double coef[MODES];
    for (int r = 0; r < rows; r++) {
        for (int m = 0; m < MODES; m++) {
            coef[m] = 0.0;
            for (int j = 0; j < LEN; j++)
                coef[m] += signal[r][j] * basis[m][j];
        }
        for (int j = 0; j < LEN; j++) {
            double s = 0.0;
            for (int m = 0; m < MODES; m++)
                s += coef[m] * basis[m][j];
            smooth[r][j] = s;
        }
    }
}

int main(void)
{
    const double pi = 3.141592653589793;
    for (int m = 0; m < MODES; m++)
        for (int j = 0; j < LEN; j++)
            basis[m][j] = cos(pi * m * (j + 0.5) / LEN) * (m == 0 ? sqrt(1.0 / LEN) : sqrt(2.0 / LEN));

    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < LEN; j++)
            signal[r][j] = sin(0.05 * j * (1 + r % 5)) + 0.3 * cos(0.9 * j + r) + 0.001 * r;

    lowpass(ROWS);

    double sum = 0.0;
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < LEN; j++)
            sum += smooth[r][j] * (1.0 + 0.01 * (j % 7));
    printf("checksum %.10e\n", sum);
    return 0;
}
