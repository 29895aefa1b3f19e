/* srv_boinc: stock BOINC clients as Tessera nodes, under /boinc/ on the same TLS port.
 *
 * A volunteer attaches with https://SERVER:PORT/boinc/ and an enrollment token as the account
 * key. Each BOINC host becomes one Tessera node of that token's volunteer (its BOINC hostid is
 * the node id). The scheduler RPC (srv_boinc.c) leases units through srv_lease_fill and reports
 * results through api_work_report, so BOINC results take exactly tessera-client's path:
 * validation, quorum, adaptive replication, aggregation. Files (srv_boinc_files.c): the master
 * page, downloads (app files signed for BOINC's code signing, unit inputs) with Range, and the
 * upload handler, which takes a result's output only with that result's secret. */
#ifndef SRV_BOINC_H
#define SRV_BOINC_H

#include <stddef.h>
#include <stdint.h>

#include "srv_boinc_key.h"
#include "srv_boinc_xml.h"
#include "srv_http.h"

#define SRV_BOINC_APP "tessera"
#define SRV_BOINC_APP_VERSION 100
#define SRV_BOINC_OUT_MAX 4096          /* bytes of a result's output file */
#define SRV_BOINC_APP_MAX (64u << 20)   /* bytes of an app file */
#define SRV_BOINC_REQ_MAX (256u << 10)  /* bytes of a scheduler request */

/* One platform's app file, signed at start; served from disk (a file changed on disk after the
 * start no longer matches its signature, and clients refuse it). */
typedef struct srv_boinc_app {
	const char *platform;
	char file[128]; /* its BOINC file name */
	char path[1024];
	size_t nbytes;
	char signature[SRV_BOINC_SIG_TEXT];
} srv_boinc_app;

struct srv_boinc {
	srv_boinc_key *key;
	srv_boinc_app apps[4];
	int n_apps;
	char in_dir[1100], up_dir[1100]; /* unit inputs written at lease time; uploaded outputs */
};

/* Makes the keys if missing (existing stores), loads them and the app files found in the app
 * directory ($TESSERA_BOINC_APPS, else boinc-apps/ beside the server's executable, else
 * ../lib/tessera/boinc-apps/ from it). No app file is not an error: hosts get no work. */
ts_err srv_boinc_start(srv_ctx *ctx);
void srv_boinc_stop(srv_ctx *ctx);

/* The app for the first platform the client names that has one, or NULL. */
const srv_boinc_app *srv_boinc_app_for(const struct srv_boinc *b, const char (*platforms)[64], int n);

/* Names: workunit "ts_<unit>_<replica>", result "<wu>_0", input "<wu>_<secret>.in", output
 * "<result>_out" (its secret goes in <xml_signature>). Parsing checks the exact form. */
void srv_boinc_wu_name(int64_t unit, int64_t replica, char out[SRV_BOINC_NAME_MAX]);
int srv_boinc_parse_result(const char *name, int64_t *unit, int64_t *replica);
int srv_boinc_parse_output(const char *name, int64_t *unit, int64_t *replica);
/* The scheduler URL base ("https://HOST") from the request's Host header; TS_ERR_BAD_REQUEST for
 * a missing or odd one. */
ts_err srv_boinc_base_url(const srv_req *r, char *out, size_t cap);

/* Writes a unit's input file (its kernel, params and range as JSON) into in_dir. */
ts_err srv_boinc_input_put(const struct srv_boinc *b, const char *name, const char *text, size_t n);
/* Reads a result's uploaded output (NULL *out if there is none). */
ts_err srv_boinc_output_read(const struct srv_boinc *b, int64_t unit, int64_t replica, char **out);
/* Reads a unit's input as written for its result (NULL *out on failure). */
ts_err srv_boinc_input_read(const struct srv_boinc *b, int64_t unit, int64_t replica, char **out);
/* Removes a result's input and output, once its report is in. */
void srv_boinc_files_drop(const struct srv_boinc *b, int64_t unit, int64_t replica);

#endif
