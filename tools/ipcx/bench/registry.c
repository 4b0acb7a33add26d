/* The registry of mechanisms. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const struct bench_mech *mechs[BENCH_MAX_MECHS];
static unsigned nmechs;

void bench_register(const struct bench_mech *m)
{
	if (nmechs < BENCH_MAX_MECHS)
		mechs[nmechs++] = m;
}

static int by_order(const void *a, const void *b)
{
	const struct bench_mech *x = *(const struct bench_mech *const *)a;
	const struct bench_mech *y = *(const struct bench_mech *const *)b;
	return x->order != y->order ? (x->order > y->order) - (x->order < y->order)
				    : strcmp(x->name, y->name);
}

unsigned bench_mechs(const struct bench_mech ***out)
{
	qsort(mechs, nmechs, sizeof mechs[0], by_order);
	*out = mechs;
	return nmechs;
}

const struct bench_mech *bench_find(const char *name)
{
	for (unsigned i = 0; i < nmechs; i++)
		if (!strcmp(mechs[i]->name, name))
			return mechs[i];
	return NULL;
}
