/* cl_http: JSON requests to a Tessera server over HTTPS (libcurl + jansson).
 *
 * One connection wraps one CURL easy handle, reused so that requests share a keep-alive TLS
 * session. Trust is a public-key pin ("sha256//<base64>", which replaces the CA chain: our
 * servers use self-signed certificates), a CA file (full verification of the chain and the
 * host name), both (a CA-signed server whose key must also match the pin), or the system CAs.
 * There is no plaintext: URLs must start with https://. Not thread-safe: one per thread. */
#ifndef CL_HTTP_H
#define CL_HTTP_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "ts_err.h"

#define CL_HTTP_URL_MAX 1024
#define CL_HTTP_MSG_MAX 512 /* room for any message a request writes */

typedef struct cl_http cl_http;

typedef struct cl_http_opts {
	const char *url;    /* base URL, "https://host:port" (a trailing '/' is dropped) */
	const char *pin;    /* "sha256//<base64>" or NULL */
	const char *cacert; /* CA file or NULL; with a pin, the chain and the pin must both hold */
	const char *token;  /* bearer token or NULL */
} cl_http_opts;

/* Checks a base URL: https:// only, with a host, not too long. On error writes a one-line
 * reason into why and returns TS_ERR_BAD_REQUEST. */
ts_err cl_http_url_check(const char *url, char *why, size_t whylen);

/* Opens a connection (no network traffic yet). On failure *out is NULL and why says why. */
ts_err cl_http_open(const cl_http_opts *opts, cl_http **out, char *why, size_t whylen);
void cl_http_close(cl_http *h);

/* The base URL without a trailing '/'. Owned by h. */
const char *cl_http_url(const cl_http *h);
/* Replaces the bearer token (NULL: none). The string is copied. */
ts_err cl_http_set_token(cl_http *h, const char *token);
/* Total time limit of one request (default 60 s; connecting is limited to 10 s). */
void cl_http_set_timeout(cl_http *h, double seconds);
/* While *flag is non-zero a request in flight is abandoned (TS_ERR_NETWORK) within about a
 * second, so a signal handler can stop a program that waits on the network. NULL: never. */
void cl_http_set_abort(cl_http *h, const volatile sig_atomic_t *flag);

/* Sends method (GET, POST, DELETE) to the base URL + path ("/api/v1/..."), with body as JSON
 * when non-NULL. On TS_OK *reply holds the parsed 2xx answer (a new reference; JSON null when
 * the body was empty) and *status its HTTP status. On failure *reply is NULL, *status is the
 * HTTP status (0 when no answer came) and msg holds a one-line message for users: the
 * server's error.message for HTTP errors, the transport's words otherwise.
 * Errors: TS_ERR_PIN (key does not match the pin), TS_ERR_TLS (certificate not trusted),
 * TS_ERR_NETWORK (connect, timeout, abort, other transport failures), or the error of the
 * HTTP status and API code (ts_err_from_http). reply, status and msg may be NULL. */
ts_err cl_http_request(cl_http *h, const char *method, const char *path, const json_t *body,
		       int *status, json_t **reply, char *msg, size_t msglen);

/* Raw bytes either way (users' files and programs' outputs). With body (bodylen bytes, sent as
 * application/octet-stream; method PUT or POST) the 2xx answer is parsed as JSON into *reply,
 * as cl_http_request does. With sink, a 2xx answer's body is written to sink as it arrives (any
 * size; nothing is written for an error answer) and *reply stays NULL. Errors as
 * cl_http_request, plus TS_ERR_IO when sink cannot be written. */
ts_err cl_http_raw(cl_http *h, const char *method, const char *path, const void *body, size_t bodylen,
		   FILE *sink, int *status, json_t **reply, char *msg, size_t msglen);

/* The Retry-After (seconds) of the last request's answer, 0 when it had none. */
double cl_http_retry_after(const cl_http *h);

#endif
