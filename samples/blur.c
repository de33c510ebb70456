/* Exercises: a 3x3 box blur on a linearised image whose border rows and columns are handled by
 * loops under guards (`if (h >= 2)`, `if (w >= 2)`) that prove the two rows, or the two
 * columns, they write distinct; the images are swapped between passes. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#ifndef W
#define W 640
#endif
#ifndef H
#define H 480
#endif
#ifndef PASSES
#define PASSES 8
#endif

static void blur(int w, int h, const float *in, float *out)
{
    /* interior: the mean of the 3x3 neighbourhood */
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            float s = 0.0f;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    s += in[(y + dy) * w + x + dx];
            out[y * w + x] = s / 9.0f;
        }
    /* the first and the last row keep their values */
    if (h >= 2)
        for (int x = 0; x < w; x++) {
            out[x] = in[x];
            out[(h - 1) * w + x] = in[(h - 1) * w + x];
        }
    /* so do the first and the last column */
    if (w >= 2)
        for (int y = 1; y < h - 1; y++) {
            out[y * w] = in[y * w];
            out[y * w + w - 1] = in[y * w + w - 1];
        }
}

int main(void)
{
    float *a = malloc(sizeof(float) * W * H), *b = malloc(sizeof(float) * W * H);
    if (a == NULL || b == NULL)
        return 1;

    /* a checkerboard of squares with a smooth gradient */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            a[y * W + x] = (float)(((x / 16 + y / 16) % 2) + 0.001 * x + 0.002 * y);

    for (int pass = 0; pass < PASSES; pass++) {
        blur(W, H, a, b);
        float *t = a;
        a = b;
        b = t;
    }

    double sum = 0.0, edge = 0.0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            sum += a[y * W + x] * (1.0 + 0.001 * ((x + y) % 11));
    for (int x = 0; x < W; x++)
        edge += fabs(a[x] - a[(H - 1) * W + x]);
    printf("sum %.6e edge %.6e\n", sum, edge);
    printf("checksum %.6e\n", sum + edge);
    free(a);
    free(b);
    return 0;
}
