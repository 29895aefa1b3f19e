#include "th_kern.h"

#include <criterion/criterion.h>
#include <stdio.h>

const kern *th_kern(const char *name)
{
	const kern *k = kern_find(name);
	cr_assert_not_null(k, "no kernel %s", name);
	return k;
}

ts_err th_kern_parse(const kern *k, const char *text, kern_args *args, char *why, size_t len)
{
	json_error_t jerr;
	json_t *params = json_loads(text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(params, "test JSON %s: %s", text, jerr.text);
	why[0] = '\0';
	ts_err e = k->parse(params, args, why, len);
	json_decref(params);
	return e;
}

kern_args th_kern_range(const kern *k, uint64_t from, uint64_t to)
{
	char text[128], why[200];
	kern_args args;
	snprintf(text, sizeof(text), "{\"from\": %llu, \"to\": %llu}", (unsigned long long)from,
		 (unsigned long long)to);
	cr_assert_eq(th_kern_parse(k, text, &args, why, sizeof(why)), TS_OK, "%s", why);
	return args;
}
