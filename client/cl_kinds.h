/* cl_kinds: the kernel and program kinds a server describes (GET /api/v1/kernels), for the
 * tessera CLI: finding a kind by name or alias, turning "--NAME VALUE" into checked params, and
 * listing them. The description is the server's; nothing here knows a kernel's parameters.
 *
 * Kinds are the JSON objects of the reply's "kernels" array (see docs/PROGRAMS-API.md):
 * {"name","alias","title","params":[{"name","type","min","max","default","required","choices",
 * "help"}],"example","default_unit","result"}. Functions take and return borrowed references
 * into that reply; pure logic, no I/O but the FILE a listing goes to. */
#ifndef CL_KINDS_H
#define CL_KINDS_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define CL_KINDS_OPTION_MAX 64 /* longest option name */

/* The kinds of servers older than /api/v1/kernels (montecarlo_pi, prime_count, collatz, with
 * their aliases pi and primes), in the same shape: what `submit` uses when that route is 404.
 * A new reference; NULL when out of memory. */
json_t *cl_kinds_legacy(void);

/* The kind whose name or alias is name (borrowed from kinds, the reply object), or NULL. */
const json_t *cl_kinds_find(const json_t *kinds, const char *name);

/* "pi, primes, collatz, program": the names a user types (the alias where there is one). */
void cl_kinds_known(const json_t *kinds, char *out, size_t outlen);

/* The parameter of kind that the option name means ("seed", or "time-s" for time_s), or NULL. */
const json_t *cl_kinds_param(const json_t *kind, const char *option);

/* "--samples, --seed": the options of kind's parameters. */
void cl_kinds_options(const json_t *kind, char *out, size_t outlen);

/* Parses text as a value of param (type integer, number, string, choice, or one item of
 * strings) and checks it against its min, max or choices. On success *out is a new reference
 * and 0 is returned; else why says, for users, what the option takes ("--samples must be an
 * integer from 1 to 1e18, not 'lots'") and -1 is returned. option is the option as shown
 * ("--samples", "-n"). */
int cl_kinds_value(const json_t *param, const char *option, const char *text, json_t **out,
		   char *why, size_t whylen);

/* Sets option's value in params (appended to an array for type strings). 0, or -1 with why
 * (an unknown option, a file parameter, or a bad value: cl_kinds_value). */
int cl_kinds_set(const json_t *kind, json_t *params, const char *option, const char *text, char *why,
		 size_t whylen);

/* 0 when params has every required parameter of kind; else -1 with why ("--samples is required
 * for pi"). */
int cl_kinds_check_required(const json_t *kind, const json_t *params, char *why, size_t whylen);

/* The type of a parameter in words, with its range, default and whether it is required:
 * "integer 1..1e18, required", "one of concat, sum, min, max; default concat". */
void cl_kinds_describe(const json_t *param, char *out, size_t outlen);

/* What `tessera kernels` prints: each kind with its options, their types and help, an example
 * and what its result holds. option_of(kind name, param name) may rename a parameter's option
 * (NULL: keep "--NAME"); it returns NULL to keep it. */
void cl_kinds_print(FILE *f, const json_t *kinds,
		    const char *(*option_of)(const char *kind, const char *param));

#endif
