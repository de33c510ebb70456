/* Exercises: all-pairs n-body on a global array of structs: scalar accumulators, continue, triangular loop. */
#include <stdio.h>
#include <math.h>

#ifndef NB
#define NB 256
#endif
#ifndef STEPS
#define STEPS 10
#endif

struct body { double x, y, z, vx, vy, vz, m; };

struct body p[NB];
double ax[NB], ay[NB], az[NB];

int main(void)
{
    const double dt = 0.01, eps2 = 1.0e-3;
    double kin = 0.0, pot = 0.0;

    /* a slightly spiralling disc with varying masses */
    for (int i = 0; i < NB; i++) {
        p[i].x = cos(0.37 * i) * (1.0 + 0.01 * i);
        p[i].y = sin(0.37 * i) * (1.0 + 0.01 * i);
        p[i].z = 0.1 * ((i % 13) - 6);
        p[i].vx = -0.2 * p[i].y;
        p[i].vy = 0.2 * p[i].x;
        p[i].vz = 0.01 * (i % 5);
        p[i].m = (1.0 + i % 3) / NB;
    }

    for (int t = 0; t < STEPS; t++) {
        /* accelerations from all other bodies */
        for (int i = 0; i < NB; i++) {
            double fx = 0.0, fy = 0.0, fz = 0.0;
            for (int j = 0; j < NB; j++) {
                if (j == i)
                    continue;
                double dx = p[j].x - p[i].x;
                double dy = p[j].y - p[i].y;
                double dz = p[j].z - p[i].z;
                double r2 = dx * dx + dy * dy + dz * dz + eps2;
                double inv = p[j].m / (r2 * sqrt(r2));
                fx += dx * inv;
                fy += dy * inv;
                fz += dz * inv;
            }
            ax[i] = fx;
            ay[i] = fy;
            az[i] = fz;
        }
        /* kick and drift */
        for (int i = 0; i < NB; i++) {
            p[i].vx += dt * ax[i];
            p[i].vy += dt * ay[i];
            p[i].vz += dt * az[i];
            p[i].x += dt * p[i].vx;
            p[i].y += dt * p[i].vy;
            p[i].z += dt * p[i].vz;
        }
    }

    /* kinetic energy */
    for (int i = 0; i < NB; i++)
        kin += 0.5 * p[i].m * (p[i].vx * p[i].vx + p[i].vy * p[i].vy + p[i].vz * p[i].vz);

    /* potential energy over unordered pairs */
    for (int i = 0; i < NB; i++)
        for (int j = i + 1; j < NB; j++) {
            double dx = p[i].x - p[j].x;
            double dy = p[i].y - p[j].y;
            double dz = p[i].z - p[j].z;
            pot -= p[i].m * p[j].m / sqrt(dx * dx + dy * dy + dz * dz + eps2);
        }

    printf("kinetic %.10e potential %.10e\n", kin, pot);
    printf("checksum %.10e\n", kin + pot);
    return 0;
}
