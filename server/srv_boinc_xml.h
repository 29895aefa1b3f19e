/* srv_boinc_xml: BOINC's XML messages as plain structs, parsed with expat, and a capped writer
 * that escapes every value. No evhttp or sqlite here, so tests and the fuzzer call it directly.
 *
 * Parsing refuses what a BOINC client never sends: a DOCTYPE (and so any entity definition),
 * a document that is not well-formed, one whose root is not the message expected, and values
 * over their caps. Unknown elements are skipped. */
#ifndef SRV_BOINC_XML_H
#define SRV_BOINC_XML_H

#include <stddef.h>
#include <stdint.h>

#include "ts_err.h"

#define SRV_BOINC_MAX_RESULTS 64   /* reported per RPC; the rest are acked on the next one */
#define SRV_BOINC_MAX_OTHER 256    /* results in progress the client lists */
#define SRV_BOINC_MAX_PLATFORMS 4
#define SRV_BOINC_NAME_MAX 128

typedef struct srv_boinc_reported {
	char name[SRV_BOINC_NAME_MAX];
	int exit_status;
	int state;               /* BOINC's RESULT state: 5 = files uploaded */
	double elapsed_s;
} srv_boinc_reported;

/* A <scheduler_request>: what Tessera uses of it. */
typedef struct srv_boinc_request {
	char authenticator[256];
	int64_t hostid;
	char platforms[SRV_BOINC_MAX_PLATFORMS][64]; /* platform_name first, then alt_platform */
	int n_platforms;
	double work_req_s;        /* max of work_req_seconds and cpu_req_secs */
	int ncpus;                /* host_info p_ncpus */
	double fpops;             /* host_info p_fpops: flops per core */
	char domain_name[65];     /* host_info domain_name (the host's name) */
	int has_code_sign_key;
	srv_boinc_reported results[SRV_BOINC_MAX_RESULTS];
	int n_results, more_results; /* more_results: some were left for the next RPC */
	char other[SRV_BOINC_MAX_OTHER][SRV_BOINC_NAME_MAX];
	int n_other;
} srv_boinc_request;

/* A <data_server_request> up to its <data> element. */
typedef struct srv_boinc_upload {
	int size_probe;           /* <get_file_size>: only name is set */
	char name[SRV_BOINC_NAME_MAX];
	char signature[128];      /* file_info's <xml_signature>, whitespace stripped */
	double max_nbytes, nbytes, offset;
	char md5[33];
	size_t data_at;           /* the file's bytes start here in the body */
} srv_boinc_upload;

/* Parse doc (n bytes). TS_ERR_BAD_REQUEST with why filled for anything malformed. */
ts_err srv_boinc_parse_request(const char *doc, size_t n, srv_boinc_request *out, char *why, size_t whylen);
ts_err srv_boinc_parse_upload(const char *doc, size_t n, srv_boinc_upload *out, char *why, size_t whylen);

/* A growing text with a hard cap; any failure sticks (failed), so callers check once. */
typedef struct srv_xbuf {
	char *p;
	size_t n, cap, max;
	int failed;
} srv_xbuf;

void srv_xbuf_init(srv_xbuf *b, size_t max);
/* Appends formatted text as is: only for markup and numbers, never for values. */
void srv_xbuf_printf(srv_xbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends value escaped (& < > " '). */
void srv_xbuf_text(srv_xbuf *b, const char *value);
/* Appends <tag>value</tag> with value escaped (& < > " '). */
void srv_xbuf_elem(srv_xbuf *b, const char *tag, const char *value);
/* Takes the text (NUL-terminated, malloc'd); NULL when anything failed (then freed). */
char *srv_xbuf_take(srv_xbuf *b, size_t *len);
void srv_xbuf_free(srv_xbuf *b);

#endif
