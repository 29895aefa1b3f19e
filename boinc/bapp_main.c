/* tessera-boinc: the app a stock BOINC client runs for Tessera units.
 *
 * No BOINC API library: the client gives the app a slot dir holding its input under the open
 * name "in" (a copy), and takes the output it writes under "out". On exit 0 the client wants
 * a file boinc_finish_called in the slot, or it starts the app again; any other exit status is
 * an error result. The cores to use are init_data.xml's <ncpus> (the client's share for this
 * task), else all of them. The unit: {"unit_id", "kernel", "params", "start", "count"}; the
 * output: the kernel's partial as the report route takes it ({"hits": H}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kern.h"

#define IN_MAX (64 * 1024)

/* <ncpus>N</ncpus> of the client's init_data.xml (the client's own file in our slot: a scan
 * for one element is enough; any doubt means all cores). */
static int slot_ncpus(void)
{
	char buf[65536];
	FILE *f = fopen("init_data.xml", "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strstr(buf, "<ncpus>");
	double v = p ? atof(p + 7) : 0;
	return v >= 1 && v <= 4096 ? (int)(v + 0.5) : 0;
}

static int fail(const char *what, const char *detail)
{
	fprintf(stderr, "tessera-boinc: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	return 1;
}

int main(void)
{
	json_error_t jerr;
	json_t *unit = json_load_file("in", 0, &jerr), *result = NULL;
	int rc = 1;
	if (!unit) {
		fail("cannot read the unit", jerr.text);
		goto out;
	}
	const kern *k = kern_find(json_string_value(json_object_get(unit, "kernel")));
	json_t *start = json_object_get(unit, "start"), *count = json_object_get(unit, "count");
	if (!k || !k->compute || !json_is_integer(start) || !json_is_integer(count) ||
	    json_integer_value(start) < 0 || json_integer_value(count) < 1) {
		fail("not a unit this app computes", NULL);
		goto out;
	}
	kern_args args;
	char why[256];
	if (k->parse(json_object_get(unit, "params"), &args, why, sizeof(why))) {
		fail("bad params", why);
		goto out;
	}
	kern_partial partial = k->zero();
	int threads = slot_ncpus();
	ts_err e = kern_run(k, &args, (uint64_t)json_integer_value(start), (uint64_t)json_integer_value(count),
			    threads, &partial, NULL);
	if (e) {
		fail("compute failed", ts_strerror(e));
		goto out;
	}
	result = k->partial_to_json(&partial);
	if (!result || json_dump_file(result, "out", JSON_COMPACT)) {
		fail("cannot write the output", NULL);
		goto out;
	}
	fprintf(stderr, "tessera-boinc: unit %lld of %s done on %d threads\n",
		(long long)json_integer_value(json_object_get(unit, "unit_id")), k->name, threads);
	/* Last: only a finished task says so, and the client then takes "out". */
	FILE *done = fopen("boinc_finish_called", "w");
	if (!done || fputs("0\n", done) < 0 || fclose(done)) {
		fail("cannot write boinc_finish_called", NULL);
		goto out;
	}
	rc = 0;
out:
	json_decref(result);
	json_decref(unit);
	return rc;
}
