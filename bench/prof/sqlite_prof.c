/* sqlite_prof: where a process spends its SQLite time, per statement, without changing it.
 *
 * An LD_PRELOAD shim: wraps sqlite3_step and sqlite3_exec, sums calls and wall time per SQL
 * text, and every second rewrites $SQLPROF_OUT (default /tmp/sqlprof.txt) with the statements
 * sorted by total time. Built by hand (CMake makes a program of each C file directly in bench/), e.g.
 *   cc -O2 -shared -fPIC -o /tmp/sqlite_prof.so bench/prof/sqlite_prof.c -ldl
 *   bench_load --server-env LD_PRELOAD=/tmp/sqlite_prof.so --server-env SQLPROF_OUT=/tmp/p.txt
 * Single-threaded callers only (the server is). */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
const char *sqlite3_sql(sqlite3_stmt *);

#define SLOTS 1024
static struct slot {
	char *sql;
	uint64_t calls, ns;
} slots[SLOTS];
static int depth;
static double next_dump;
static uint64_t total_ns;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct slot *find(const char *sql)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = sql; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (unsigned i = 0; i < SLOTS; i++) {
		struct slot *s = &slots[(h + i) % SLOTS];
		if (!s->sql) {
			s->sql = strdup(sql);
			return s;
		}
		if (strcmp(s->sql, sql) == 0)
			return s;
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	const struct slot *x = *(struct slot *const *)a, *y = *(struct slot *const *)b;
	return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

static void dump(void)
{
	const char *path = getenv("SQLPROF_OUT");
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path ? path : "/tmp/sqlprof.txt");
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	struct slot *v[SLOTS];
	int n = 0;
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].sql)
			v[n++] = &slots[i];
	qsort(v, (size_t)n, sizeof(v[0]), cmp);
	fprintf(f, "%8s %10s %9s %7s  %s\n", "share", "calls", "total_ms", "us/call", "statement");
	for (int i = 0; i < n; i++)
		fprintf(f, "%7.1f%% %10llu %9.1f %7.1f  %s\n", total_ns ? 100.0 * v[i]->ns / total_ns : 0,
			(unsigned long long)v[i]->calls, v[i]->ns / 1e6,
			v[i]->calls ? v[i]->ns / 1e3 / v[i]->calls : 0, v[i]->sql);
	fclose(f);
	rename(tmp, path ? path : "/tmp/sqlprof.txt");
}

static void account(const char *sql, uint64_t ns)
{
	struct slot *s = find(sql ? sql : "?");
	if (s) {
		s->calls++;
		s->ns += ns;
	}
	total_ns += ns;
	double t = now_s();
	if (t >= next_dump) {
		next_dump = t + 1.0;
		dump();
	}
}

int sqlite3_step(sqlite3_stmt *st)
{
	static int (*real)(sqlite3_stmt *);
	if (!real)
		real = (int (*)(sqlite3_stmt *))dlsym(RTLD_NEXT, "sqlite3_step");
	if (depth)
		return real(st);
	depth++;
	double t0 = now_s();
	int rc = real(st);
	uint64_t ns = (uint64_t)((now_s() - t0) * 1e9);
	depth--;
	account(sqlite3_sql(st), ns);
	return rc;
}

int sqlite3_exec(sqlite3 *db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg,
		 char **err)
{
	static int (*real)(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *, char **);
	if (!real)
		real = (int (*)(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *,
				char **))dlsym(RTLD_NEXT, "sqlite3_exec");
	if (depth)
		return real(db, sql, cb, arg, err);
	depth++;
	double t0 = now_s();
	int rc = real(db, sql, cb, arg, err);
	uint64_t ns = (uint64_t)((now_s() - t0) * 1e9);
	depth--;
	account(sql, ns);
	return rc;
}
