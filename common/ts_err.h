/* ts_err: the one error enum of Tessera, its messages and HTTP statuses. */
#ifndef TS_ERR_H
#define TS_ERR_H

typedef enum ts_err {
	TS_OK = 0,
	TS_ERR_BAD_REQUEST,   /* malformed or invalid input */
	TS_ERR_UNAUTHORIZED,  /* no credentials, or wrong ones */
	TS_ERR_FORBIDDEN,     /* credentials fine, role not allowed */
	TS_ERR_NOT_FOUND,
	TS_ERR_METHOD,        /* method not allowed on this path */
	TS_ERR_CONFLICT,      /* state does not allow it (job already done...) */
	TS_ERR_TOO_LARGE,     /* body or inflated body over its cap */
	TS_ERR_RATE_LIMITED,
	TS_ERR_UNAVAILABLE,   /* try again later (store busy, shutting down) */
	TS_ERR_INTERNAL,      /* a bug or an I/O failure on our side */
	TS_ERR_NOMEM,
	TS_ERR_IO,            /* file or socket I/O */
	TS_ERR_DB,
	TS_ERR_TLS,
	TS_ERR_NETWORK,       /* client side: could not reach the server */
	TS_ERR_PIN,           /* client side: server key does not match the pin */
	TS_ERR__COUNT
} ts_err;

/* A short human text for the error ("bad request"). Never NULL. */
const char *ts_strerror(ts_err e);
/* The API code string ("bad_request"). Never NULL. */
const char *ts_err_code(ts_err e);
/* The HTTP status a server answers with for this error. */
int ts_err_http_status(ts_err e);
/* The error for an HTTP status and API code seen by a client (code may be NULL). */
ts_err ts_err_from_http(int status, const char *code);

#endif
