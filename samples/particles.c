/* Exercises: particles as a structure of arrays reached through a struct pointer (fields loaded
 * from memory), a struct passed by value, and a loop bound read from a struct field. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#ifndef NP
#define NP 20000
#endif
#ifndef STEPS
#define STEPS 20
#endif

struct particles {
    int n;
    double *x, *y, *vx, *vy, *m;
};

struct span {
    int n;
    double *v;
};

static struct particles *particles_new(int n)
{
    struct particles *p = malloc(sizeof *p);
    if (p == NULL)
        return NULL;
    p->n = n;
    p->x = malloc(n * sizeof(double));
    p->y = malloc(n * sizeof(double));
    p->vx = malloc(n * sizeof(double));
    p->vy = malloc(n * sizeof(double));
    p->m = malloc(n * sizeof(double));
    if (!p->x || !p->y || !p->vx || !p->vy || !p->m)
        return NULL;
    return p;
}

/* one symplectic Euler step in a softened central potential */
static void step(struct particles *p, double dt, double k)
{
    for (int i = 0; i < p->n; i++) {
        double r2 = p->x[i] * p->x[i] + p->y[i] * p->y[i] + 0.01;
        double f = -k * p->m[i] / (r2 * sqrt(r2));
        p->vx[i] += dt * f * p->x[i];
        p->vy[i] += dt * f * p->y[i];
        p->x[i] += dt * p->vx[i];
        p->y[i] += dt * p->vy[i];
    }
}

/* a struct by value: its fields are plain data (a count and a pointer) */
static void damp(struct span s, double factor)
{
    for (int i = 0; i < s.n; i++)
        s.v[i] *= factor;
}

static double kinetic(const struct particles *p)
{
    double e = 0.0;
    for (int i = 0; i < p->n; i++)
        e += 0.5 * p->m[i] * (p->vx[i] * p->vx[i] + p->vy[i] * p->vy[i]);
    return e;
}

int main(void)
{
    struct particles *p = particles_new(NP);
    if (p == NULL)
        return 1;

    /* a ring of particles on near-circular orbits */
    for (int i = 0; i < p->n; i++) {
        double a = 6.283185307179586 * i / p->n, r = 1.0 + 0.25 * (i % 7) / 7.0;
        p->x[i] = r * cos(a);
        p->y[i] = r * sin(a);
        p->vx[i] = -sin(a) / sqrt(r);
        p->vy[i] = cos(a) / sqrt(r);
        p->m[i] = 1.0 + 0.5 * (i % 3);
    }

    for (int t = 0; t < STEPS; t++) {
        step(p, 1.0e-3, 1.0);
        struct span vx = {p->n, p->vx}, vy = {p->n, p->vy};
        damp(vx, 0.9999);
        damp(vy, 0.9999);
    }

    double cx = 0.0, cy = 0.0;
    for (int i = 0; i < p->n; i++) {
        cx += p->m[i] * p->x[i];
        cy += p->m[i] * p->y[i];
    }
    double e = kinetic(p);
    printf("kinetic %.10e centre %.10e %.10e\n", e, cx, cy);
    printf("checksum %.10e\n", e + cx + cy);
    free(p->x);
    free(p->y);
    free(p->vx);
    free(p->vy);
    free(p->m);
    free(p);
    return 0;
}
