/* Bad input against a real server: every case gets its 4xx JSON error and the store is
 * byte-for-byte unchanged afterwards. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "th_harness.h"
#include "ts_util.h"

enum who { NOBODY, ADMIN, NODE, BOGUS, USER_NODE_SWAP };

struct bad_case {
	const char *name;
	const char *method, *path;
	enum who who;
	const char *body; /* NULL: none */
	int gzip;
	long status;
	const char *code;
};

static const struct bad_case cases[] = {
	{"malformed JSON", "POST", "/api/v1/jobs", ADMIN, "{\"kernel\": ", 0, 400, "bad_request"},
	{"body not an object", "POST", "/api/v1/jobs", ADMIN, "[1,2,3]", 0, 400, "bad_request"},
	{"empty body", "POST", "/api/v1/jobs", ADMIN, "", 0, 400, "bad_request"},
	{"duplicate keys", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"kernel\":\"x\",\"params\":{\"samples\":10}}", 0, 400, "bad_request"},
	{"unknown kernel", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"bitcoin\",\"params\":{\"samples\":10}}", 0, 400, "bad_request"},
	{"missing kernel", "POST", "/api/v1/jobs", ADMIN, "{\"params\":{\"samples\":10}}", 0, 400, "bad_request"},
	{"kernel not a string", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":7,\"params\":{\"samples\":10}}", 0, 400, "bad_request"},
	{"negative samples", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":-5}}", 0, 400, "bad_request"},
	{"zero samples", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":0}}", 0, 400, "bad_request"},
	{"absurd samples", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":9000000000000000000}}", 0, 400, "bad_request"},
	{"samples beyond int64", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":99999999999999999999999}}", 0, 400, "bad_request"},
	{"samples a string", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":\"1000\"}}", 0, 400, "bad_request"},
	{"samples a float", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000.5}}", 0, 400, "bad_request"},
	{"negative seed", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10,\"seed\":-1}}", 0, 400, "bad_request"},
	{"unknown param", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10,\"color\":1}}", 0, 400, "bad_request"},
	{"unknown field", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10},\"priority\":9}", 0, 400, "bad_request"},
	/* The fuzzer's find: the message quotes 64 bytes of the name, which once ended inside the
	 * "é" (bytes 64 and 65), and the invalid UTF-8 message made an empty 400. */
	{"unknown field cut inside a UTF-8 character", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10},"
	 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u00e9\u00e9\u00e9\":1}", 0, 400, "bad_request"},
	{"unknown field with control characters", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10},\"a\\n\\u001b[31m\\u009b\":1}", 0, 400, "bad_request"},
	{"rates kernel name cut inside a UTF-8 character", "POST", "/api/v1/nodes/enroll", NOBODY,
	 "{\"token\":\"hello\",\"name\":\"x\",\"platform\":\"linux\",\"cores\":1,\"rates\":{"
	 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u00e9\u00e9\u00e9\":1}}", 0, 400, "bad_request"},
	{"kernel name with control characters", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"\\u001b]0;pwned\\u0007\",\"params\":{\"samples\":10}}", 0, 400, "bad_request"},
	{"too many units", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000000},\"units\":2000000}", 0, 400, "bad_request"},
	{"unit size makes too many units", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000000},\"unit_size\":1}", 0, 400, "bad_request"},
	{"negative unit size", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"unit_size\":-3}", 0, 400, "bad_request"},
	{"units and unit_size", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":3,\"unit_size\":5}", 0, 400, "bad_request"},
	{"quorum over replication", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"replication\":1,\"quorum\":2}", 0, 400, "bad_request"},
	{"deadline too short", "POST", "/api/v1/jobs", ADMIN,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"deadline_s\":1}", 0, 400, "bad_request"},
	{"missing token", "POST", "/api/v1/jobs", NOBODY,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000}}", 0, 401, "unauthorized"},
	{"bogus token", "POST", "/api/v1/jobs", BOGUS,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000}}", 0, 401, "unauthorized"},
	{"node token submits a job", "POST", "/api/v1/jobs", NODE,
	 "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000}}", 0, 403, "forbidden"},
	{"admin token fetches work", "POST", "/api/v1/work/fetch", ADMIN, "{\"max_units\":1}", 0, 403, "forbidden"},
	{"no token fetches work", "POST", "/api/v1/work/fetch", NOBODY, "{\"max_units\":1}", 0, 401, "unauthorized"},
	{"node token makes enroll tokens", "POST", "/api/v1/enroll-tokens", NODE, "{}", 0, 403, "forbidden"},
	{"no token lists jobs", "GET", "/api/v1/jobs", NOBODY, NULL, 0, 401, "unauthorized"},
	{"node lists nodes", "GET", "/api/v1/nodes", NODE, NULL, 0, 403, "forbidden"},
	{"fetch too many units", "POST", "/api/v1/work/fetch", NODE, "{\"max_units\":100000}", 0, 400, "bad_request"},
	{"fetch negative units", "POST", "/api/v1/work/fetch", NODE, "{\"max_units\":-1}", 0, 400, "bad_request"},
	{"report not an array", "POST", "/api/v1/work/report", NODE, "{\"results\":{}}", 0, 400, "bad_request"},
	{"report empty", "POST", "/api/v1/work/report", NODE, "{\"results\":[]}", 0, 400, "bad_request"},
	{"report item without result", "POST", "/api/v1/work/report", NODE,
	 "{\"results\":[{\"unit_id\":1}]}", 0, 400, "bad_request"},
	{"report negative wall time", "POST", "/api/v1/work/report", NODE,
	 "{\"results\":[{\"unit_id\":1,\"result\":{\"hits\":1},\"wall_s\":-1}]}", 0, 400, "bad_request"},
	{"enroll with a wrong token", "POST", "/api/v1/nodes/enroll", NOBODY,
	 "{\"token\":\"tse1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	 "\"name\":\"x\",\"platform\":\"linux\",\"cores\":1}", 0, 401, "unauthorized"},
	{"enroll with garbage token", "POST", "/api/v1/nodes/enroll", NOBODY,
	 "{\"token\":\"hello\",\"name\":\"x\",\"platform\":\"linux\",\"cores\":1}", 0, 401, "unauthorized"},
	{"enroll with zero cores", "POST", "/api/v1/nodes/enroll", NOBODY,
	 "{\"token\":\"hello\",\"name\":\"x\",\"platform\":\"linux\",\"cores\":0}", 0, 400, "bad_request"},
	{"enroll token with zero uses", "POST", "/api/v1/enroll-tokens", ADMIN, "{\"uses\":0}", 0, 400, "bad_request"},
	{"enroll token ttl absurd", "POST", "/api/v1/enroll-tokens", ADMIN, "{\"ttl_s\":99999999999}", 0, 400, "bad_request"},
	{"login wrong password", "POST", "/api/v1/login", NOBODY,
	 "{\"username\":\"admin\",\"password\":\"wrong\"}", 0, 401, "unauthorized"},
	{"login unknown user", "POST", "/api/v1/login", NOBODY,
	 "{\"username\":\"mallory\",\"password\":\"wrong\"}", 0, 401, "unauthorized"},
	{"login password not a string", "POST", "/api/v1/login", NOBODY,
	 "{\"username\":\"admin\",\"password\":12}", 0, 400, "bad_request"},
	{"no such job", "GET", "/api/v1/jobs/999999", ADMIN, NULL, 0, 404, "not_found"},
	{"job id not a number", "GET", "/api/v1/jobs/abc", ADMIN, NULL, 0, 404, "not_found"},
	{"job id zero", "GET", "/api/v1/jobs/0", ADMIN, NULL, 0, 404, "not_found"},
	{"cancel no such job", "DELETE", "/api/v1/jobs/424242", ADMIN, NULL, 0, 404, "not_found"},
	{"no such route", "GET", "/api/v1/bitcoin", ADMIN, NULL, 0, 404, "not_found"},
	{"wrong method", "PUT", "/api/v1/jobs", ADMIN, "{}", 0, 405, "method_not_allowed"},
	{"gzip garbage", "POST", "/api/v1/jobs", ADMIN, NULL, 2, 400, "bad_request"},
	{"gzip bad JSON", "POST", "/api/v1/jobs", ADMIN, "{\"kernel\":", 1, 400, "bad_request"},
};

static void token_for(enum who who, const th_server *s, const char *node_token, const char **out)
{
	switch (who) {
	case ADMIN: *out = s->admin_token; break;
	case NODE: *out = node_token; break;
	case BOGUS: *out = "tss.notarealtokennotarealtokennotarealtoken00"; break;
	default: *out = NULL; break;
	}
}

static th_server srv;

static void setup(void)
{
	th_server_start(&srv);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

/* Enrolls a node through the API and returns its token. */
static void enroll_node(char *node_token, size_t cap)
{
	char token[160], body[400];
	json_t *reply = NULL;
	th_enroll_token(&srv, 1, token, sizeof(token));
	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"name\":\"n1\",\"platform\":\"linux-x86_64\",\"cores\":2}", token);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/nodes/enroll", NULL, body, strlen(body), 0, &reply), 201);
	snprintf(node_token, cap, "%s", json_string_value(json_object_get(reply, "node_token")));
	json_decref(reply);
}

Test(api, bad_input_changes_nothing, .init = setup, .fini = teardown, .timeout = 120)
{
	char node_token[160], before[65], after[65];
	enroll_node(node_token, sizeof(node_token));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":1},\"units\":4}");
	th_db_digest(&srv, before);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		const char *token;
		json_t *reply = NULL;
		token_for(c->who, &srv, node_token, &token);
		const char *body = c->body;
		size_t len = body ? strlen(body) : 0;
		if (c->gzip == 2) {
			body = "\x1f\x8b\x08\x00garbage-not-deflate";
			len = strlen(body);
		}
		long status = th_http(&srv, c->method, c->path, token, body, len, c->gzip == 1, &reply);
		cr_expect_eq(status, c->status, "%s: HTTP %ld, want %ld", c->name, status, c->status);
		json_t *err = json_object_get(reply, "error");
		cr_expect(json_is_object(err), "%s: no JSON error body", c->name);
		cr_expect_str_eq(json_string_value(json_object_get(err, "code")) ?: "(none)", c->code, "%s", c->name);
		const char *msg = json_string_value(json_object_get(err, "message"));
		cr_expect(msg && *msg, "%s: empty message", c->name);
		cr_expect(!msg || ts_utf8_printable(msg), "%s: message with control characters: %s", c->name, msg);
		json_decref(reply);
	}
	th_db_digest(&srv, after);
	cr_expect_str_eq(after, before, "a rejected request changed the store");
}

Test(api, oversized_body_and_gzip_bomb_are_413, .init = setup, .fini = teardown, .timeout = 60)
{
	char before[65], after[65];
	size_t n = (1 << 20) + 100;
	char *big = malloc(n + 1);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	th_db_digest(&srv, before);
	json_t *reply = NULL;
	/* Over the cap as sent: evhttp's own 413, before the body is read (curl waits for
	 * "100 Continue" with a body this big, and gets the 413 instead). */
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/jobs", srv.admin_token, big, n, 0, &reply), 413);
	json_decref(reply);
	/* 1 MiB of spaces inflates from a few KiB: a small gzip bomb, refused with our JSON 413. */
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/jobs", srv.admin_token, big, n, 1, &reply), 413);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(reply, "error"), "code")) ?: "(none)",
			 "too_large");
	json_decref(reply);
	free(big);
	th_db_digest(&srv, after);
	cr_expect_str_eq(after, before);
	/* The server still serves. */
	cr_expect_eq(th_http(&srv, "GET", "/healthz", NULL, NULL, 0, 0, NULL), 200);
}

Test(api, gzip_body_accepted, .init = setup, .fini = teardown, .timeout = 60)
{
	const char *body = "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":1},\"units\":2}";
	json_t *reply = NULL;
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/jobs", srv.admin_token, body, strlen(body), 1, &reply), 201);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(reply, "units"), "total")), 2);
	json_decref(reply);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 1);
}

Test(api, reports_are_idempotent_and_owned, .init = setup, .fini = teardown, .timeout = 60)
{
	char n1[160], n2[160], body[256];
	json_t *reply = NULL;
	enroll_node(n1, sizeof(n1));
	enroll_node(n2, sizeof(n2));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":1},\"units\":1}");
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/fetch", n1, "{}", 2, 0, &reply), 200);
	json_t *unit = json_array_get(json_object_get(reply, "units"), 0);
	cr_assert(unit, "no unit handed out");
	int64_t uid = json_integer_value(json_object_get(unit, "id"));
	cr_expect_eq(json_integer_value(json_object_get(unit, "count")), 1000);
	json_decref(reply);

	/* Another node reporting it is refused and changes nothing. */
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"hits\":1}}]}", (long long)uid);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/report", n2, body, strlen(body), 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "accepted")), 0);
	cr_expect_eq(json_array_size(json_object_get(reply, "rejected")), 1);
	json_decref(reply);
	/* An impossible result (more hits than samples) is refused. */
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"hits\":1001}}]}", (long long)uid);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/report", n1, body, strlen(body), 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "rejected")), 1);
	json_decref(reply);
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM jobs"), 0);

	/* The holder's report counts once, however often it is retried. */
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"hits\":795},\"wall_s\":0.5}]}", (long long)uid);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/report", n1, body, strlen(body), 0, &reply), 200);
		cr_expect_eq(json_array_size(json_object_get(reply, "accepted")), 1, "try %d", i);
		json_decref(reply);
	}
	json_t *j = th_wait_job(&srv, job, 10);
	cr_assert(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), 795);
	json_decref(j);
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM nodes WHERE id = 1"), 1);
}

Test(api, cancel_stops_handing_out_units, .init = setup, .fini = teardown, .timeout = 60)
{
	char n1[160], path[64];
	json_t *reply = NULL;
	enroll_node(n1, sizeof(n1));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":10}");
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/fetch", n1, "{\"max_units\":2}", 15, 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "units")), 2);
	json_decref(reply);
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)job);
	cr_assert_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, &reply), 200);
	cr_expect_str_eq(json_string_value(json_object_get(reply, "state")), "cancelled");
	json_decref(reply);
	cr_expect_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, NULL), 409);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/fetch", n1, "{\"max_units\":5}", 15, 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "units")), 0);
	json_decref(reply);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units WHERE state = 1"), 0, "leases not dropped");
	/* A result for a dropped unit is refused. */
	const char *body = "{\"results\":[{\"unit_id\":1,\"result\":{\"hits\":10}}]}";
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/report", n1, body, strlen(body), 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "rejected")), 1);
	json_decref(reply);
}

/* One TLS connection on which req is sent as it is; reads until the server closes. Returns the
 * bytes read (malloc'd). *closed is 1 when the server closed the connection, 0 when the read
 * gave up after 60 s (a guard against a test that hangs, not a measurement). */
static char *tls_exchange(const th_server *s, const char *req, int *closed)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval guard = {60, 0};
	cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard));
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	cr_assert_eq(SSL_connect(ssl), 1, "TLS handshake");
	cr_assert_eq(SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req));
	size_t len = 0, cap = 1 << 16;
	char *out = malloc(cap + 1);
	int n;
	errno = 0;
	while (len < cap && (n = SSL_read(ssl, out + len, (int)(cap - len))) > 0)
		len += (size_t)n;
	*closed = errno != EAGAIN && errno != EWOULDBLOCK;
	out[len] = '\0';
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return out;
}

/* Bodies are refused by their announced size before a byte of them is read: the requests here
 * send headers only, and the 413 must come back (and the connection close) all the same. */
Test(api, oversized_content_length_refused_before_the_body, .init = setup, .fini = teardown, .timeout = 300)
{
	static const char *const heads[] = {
		"Content-Length: 2000000",   /* over the 1 MiB cap, under evhttp's old 8 MiB one */
		"Content-Length: 9000000",
		"Transfer-Encoding: chunked", /* then a 2 MiB chunk is announced */
	};
	char req[1024];
	for (size_t i = 0; i < TS_ARRAY_LEN(heads); i++) {
		int closed = 0;
		snprintf(req, sizeof(req),
			 "POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
			 "Content-Type: application/json\r\n%s\r\n\r\n%s",
			 srv.admin_token, heads[i], strstr(heads[i], "chunked") ? "200000\r\n" : "");
		char *reply = tls_exchange(&srv, req, &closed);
		cr_expect(strncmp(reply, "HTTP/1.1 413 ", 13) == 0, "%s: got '%.80s'", heads[i], reply);
		cr_expect(closed, "%s: the server waited for the body", heads[i]);
		free(reply);
	}
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 0);
	cr_expect_eq(th_http(&srv, "GET", "/healthz", NULL, NULL, 0, 0, NULL), 200);
}

Test(api, every_reply_has_hsts, .init = setup, .fini = teardown, .timeout = 60)
{
	static const char *const reqs[] = {
		"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
		"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", /* 401 */
		"GET /api/v1/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", /* 404 */
		"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",            /* the dashboard */
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(reqs); i++) {
		int closed = 0;
		char *reply = tls_exchange(&srv, reqs[i], &closed);
		char *end = strstr(reply, "\r\n\r\n");
		if (end)
			end[2] = '\0'; /* the headers only, each line with its CRLF */
		cr_expect(strncmp(reply, "HTTP/1.1 ", 9) == 0, "%.30s: no reply", reqs[i]);
		cr_expect(strstr(reply, "\r\nStrict-Transport-Security: max-age=31536000\r\n") != NULL,
			  "%.30s: no HSTS in\n%s", reqs[i], reply);
		free(reply);
	}
}

/* Names that reach logs and admins' terminals: control characters are refused at the door. */
Test(api, control_characters_in_names_are_refused, .init = setup, .fini = teardown, .timeout = 60)
{
	static const char *const bad[] = {"a\\nb", "\\u001b[31m", "x\\u009b2J", "del\\u007f", "tab\\there"};
	char token[160], body[600], before[65], after[65];
	json_t *reply = NULL;
	th_enroll_token(&srv, 1, token, sizeof(token));
	th_db_digest(&srv, before);
	for (size_t i = 0; i < TS_ARRAY_LEN(bad); i++) {
		for (int field = 0; field < 2; field++) {
			snprintf(body, sizeof(body), "{\"token\":\"%s\",\"name\":\"%s\",\"platform\":\"%s\",\"cores\":1}",
				 token, field ? "n1" : bad[i], field ? bad[i] : "linux");
			long status = th_http(&srv, "POST", "/api/v1/nodes/enroll", NULL, body, strlen(body), 0, &reply);
			cr_expect_eq(status, 400, "%s %s: HTTP %ld", field ? "platform" : "name", bad[i], status);
			const char *msg = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
			cr_expect(msg && strstr(msg, "control characters"), "%s: message %s", bad[i], msg ? msg : "(none)");
			json_decref(reply);
		}
		snprintf(body, sizeof(body), "{\"name\":\"%s\"}", bad[i]);
		cr_expect_eq(th_http(&srv, "POST", "/api/v1/tokens", srv.admin_token, body, strlen(body), 0, NULL), 400,
			     "token name %s", bad[i]);
		snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"password-1\"}", bad[i]);
		cr_expect_eq(th_http(&srv, "POST", "/api/v1/users", srv.admin_token, body, strlen(body), 0, NULL), 400,
			     "user name %s", bad[i]);
	}
	th_db_digest(&srv, after);
	cr_expect_str_eq(after, before, "a refused name changed the store");
	/* The enrollment token was not used up: a clean name still enrolls with it, and the name
	 * is stored as sent (letters beyond ASCII are fine). */
	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"name\":\"n\\u00e9-1\",\"platform\":\"linux\",\"cores\":1}", token);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/nodes/enroll", NULL, body, strlen(body), 0, NULL), 201);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE name = 'n\xc3\xa9-1'"), 1);
}

Test(util, escape_ctrl)
{
	char out[64];
	cr_expect_str_eq(ts_escape_ctrl("node-1", out, sizeof(out)), "node-1");
	cr_expect_str_eq(ts_escape_ctrl("a\nb\x1b[31m", out, sizeof(out)), "a\\x0ab\\x1b[31m");
	cr_expect_str_eq(ts_escape_ctrl("del\x7f", out, sizeof(out)), "del\\x7f");
	/* C1 controls are two bytes in UTF-8: both escaped; other letters stay as they are. */
	cr_expect_str_eq(ts_escape_ctrl("\xc2\x9b" "2J n\xc3\xa9 \xe2\x82\xac", out, sizeof(out)),
			 "\\xc2\\x9b2J n\xc3\xa9 \xe2\x82\xac");
	/* Bytes that are not UTF-8: a cut character, a stray continuation, an overlong '/'. */
	cr_expect_str_eq(ts_escape_ctrl("x\xc3", out, sizeof(out)), "x\\xc3");
	cr_expect_str_eq(ts_escape_ctrl("\x80y\xc0\xaf", out, sizeof(out)), "\\x80y\\xc0\\xaf");
	/* Too small a buffer: the copy stops before a character or an escape, never inside one. */
	cr_expect_str_eq(ts_escape_ctrl("ab\xc3\xa9", out, 4), "ab");
	cr_expect_str_eq(ts_escape_ctrl("ab\n", out, 6), "ab");
	cr_expect_str_eq(ts_escape_ctrl("ab\n", out, 7), "ab\\x0a");
	cr_expect_str_eq(ts_escape_ctrl("anything", out, 1), "");
	cr_expect(ts_utf8_printable("n\xc3\xa9-1"));
	cr_expect(!ts_utf8_printable("a\tb"));
	cr_expect(!ts_utf8_printable("\xc2\x85"));
	cr_expect(!ts_utf8_printable("\xed\xa0\x80")); /* a surrogate */
}
