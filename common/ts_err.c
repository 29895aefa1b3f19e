#include "ts_err.h"

#include <string.h>

/* One row per error: the table is the only place that maps errors to text and status. */
static const struct {
	const char *code;
	const char *text;
	int status;
} err_table[TS_ERR__COUNT] = {
	[TS_OK] = {"ok", "success", 200},
	[TS_ERR_BAD_REQUEST] = {"bad_request", "bad request", 400},
	[TS_ERR_UNAUTHORIZED] = {"unauthorized", "not authenticated", 401},
	[TS_ERR_FORBIDDEN] = {"forbidden", "not allowed", 403},
	[TS_ERR_NOT_FOUND] = {"not_found", "not found", 404},
	[TS_ERR_METHOD] = {"method_not_allowed", "method not allowed", 405},
	[TS_ERR_CONFLICT] = {"conflict", "conflict with the current state", 409},
	[TS_ERR_TOO_LARGE] = {"too_large", "request too large", 413},
	[TS_ERR_RATE_LIMITED] = {"rate_limited", "too many requests", 429},
	[TS_ERR_UNAVAILABLE] = {"unavailable", "service unavailable", 503},
	[TS_ERR_INTERNAL] = {"internal", "internal error", 500},
	[TS_ERR_NOMEM] = {"internal", "out of memory", 500},
	[TS_ERR_IO] = {"internal", "I/O error", 500},
	[TS_ERR_DB] = {"internal", "database error", 500},
	[TS_ERR_TLS] = {"internal", "TLS error", 500},
	[TS_ERR_NETWORK] = {"network", "cannot reach the server", 502},
	[TS_ERR_PIN] = {"pin_mismatch", "server key does not match the pinned key", 502},
};

static int err_valid(ts_err e)
{
	return (int)e >= 0 && e < TS_ERR__COUNT;
}

const char *ts_strerror(ts_err e)
{
	return err_valid(e) ? err_table[e].text : "unknown error";
}

const char *ts_err_code(ts_err e)
{
	return err_valid(e) ? err_table[e].code : "internal";
}

int ts_err_http_status(ts_err e)
{
	return err_valid(e) ? err_table[e].status : 500;
}

ts_err ts_err_from_http(int status, const char *code)
{
	if (status >= 200 && status < 300)
		return TS_OK;
	for (int e = 1; e < TS_ERR__COUNT; e++)
		if (code && strcmp(err_table[e].code, code) == 0)
			return (ts_err)e;
	for (int e = 1; e < TS_ERR__COUNT; e++)
		if (err_table[e].status == status)
			return (ts_err)e;
	return TS_ERR_INTERNAL;
}
