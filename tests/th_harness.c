#include "th_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <sqlite3.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "ts_util.h"

extern char **environ;

const char *th_bin(const char *name)
{
	static char path[8][512];
	static int next;
	char *p = path[next++ % 8];
	snprintf(p, 512, "%s/%s", TESSERA_BIN_DIR, name);
	return p;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

pid_t th_spawn(char *const argv[], char *const env[], const char *logfile)
{
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork failed");
	if (pid > 0)
		return pid;
	int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	int nul = open("/dev/null", O_RDONLY);
	if (nul >= 0) {
		dup2(nul, 0);
		close(nul);
	}
	for (size_t i = 0; env && env[i]; i++)
		putenv(env[i]);
	execv(argv[0], argv);
	_exit(127);
}

static int wait_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Waits up to timeout_s; returns the status or -1 if still running. */
static int wait_for(pid_t pid, double timeout_s)
{
	double end = ts_mono() + timeout_s;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return wait_status(status);
		if (r < 0)
			return -2;
		if (ts_mono() > end)
			return -1;
		sleep_s(0.01);
	}
}

int th_proc_stop(pid_t pid, double grace_s)
{
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	int rc = wait_for(pid, grace_s);
	if (rc == -1) {
		kill(pid, SIGKILL);
		rc = wait_for(pid, 10);
	}
	return rc;
}

int th_run(char *const argv[], char *const env[], double timeout_s, char *out, size_t cap)
{
	char log[] = "/tmp/tessera-run-XXXXXX";
	int fd = mkstemp(log);
	cr_assert(fd >= 0);
	close(fd);
	pid_t pid = th_spawn(argv, env, log);
	int rc = wait_for(pid, timeout_s);
	if (rc == -1) {
		kill(pid, SIGKILL);
		wait_for(pid, 10);
	}
	if (out && cap) {
		char *text = NULL;
		size_t n = 0;
		out[0] = '\0';
		if (ts_read_file(log, 1 << 20, &text, &n) == TS_OK) {
			snprintf(out, cap, "%s", text);
			free(text);
		}
	}
	unlink(log);
	return rc;
}

static void server_launch(th_server *s)
{
	char portfile[400], log[400];
	snprintf(portfile, sizeof(portfile), "%s/server.port", s->data);
	snprintf(log, sizeof(log), "%s/server.log", s->dir);
	unlink(portfile);
	char listen[64], timeout[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
	snprintf(timeout, sizeof(timeout), "%d", s->node_timeout_s);
	char *argv[24] = {(char *)th_bin("tessera-server"), "run", "--data", s->data, "--listen", listen};
	int n = 6;
	if (s->node_timeout_s) {
		argv[n++] = "--node-timeout";
		argv[n++] = timeout;
	}
	for (int i = 0; s->extra[i] && n < 22; i++)
		argv[n++] = (char *)s->extra[i];
	argv[n] = NULL;
	s->pid = th_spawn(argv, NULL, log);
	double end = ts_mono() + 15;
	char *text = NULL;
	while (ts_read_file(portfile, 64, &text, NULL) != TS_OK) {
		int st;
		cr_assert(waitpid(s->pid, &st, WNOHANG) == 0, "tessera-server exited at start (see %s)", log);
		cr_assert(ts_mono() < end, "tessera-server did not start in 15 s");
		sleep_s(0.02);
	}
	s->port = atoi(text);
	snprintf(s->url, sizeof(s->url), "https://127.0.0.1:%d", s->port);
	free(text);
}



static void server_start(th_server *s, int node_timeout_s, const char *const *args)
{
	char out[4096];
	memset(s, 0, sizeof(*s));
	s->node_timeout_s = node_timeout_s;
	for (int i = 0; args && args[i] && i < 8; i++)
		s->extra[i] = args[i];
	snprintf(s->dir, sizeof(s->dir), "/tmp/tessera-test-XXXXXX");
	cr_assert(mkdtemp(s->dir), "mkdtemp failed");
	snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
	char *argv[] = {(char *)th_bin("tessera-server"), "init", "--data", s->data, NULL};
	char *env[] = {"TESSERA_ADMIN_PASSWORD=" TH_ADMIN_PASSWORD, NULL};
	int rc = th_run(argv, env, 30, out, sizeof(out));
	cr_assert_eq(rc, 0, "tessera-server init failed: %s", out);
	char *pin = strstr(out, "pin: ");
	cr_assert(pin, "init printed no pin: %s", out);
	sscanf(pin + 5, "%63s", s->pin);
	server_launch(s);
	json_t *reply = NULL;
	char body[256];
	snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}", TH_ADMIN_PASSWORD);
	long status = th_http(s, "POST", "/api/v1/login", NULL, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 200, "admin login failed");
	snprintf(s->admin_token, sizeof(s->admin_token), "%s",
		 json_string_value(json_object_get(reply, "token")));
	json_decref(reply);
}

void th_server_start(th_server *s)
{
	server_start(s, 0, NULL);
}

void th_server_start_timeout(th_server *s, int node_timeout_s)
{
	server_start(s, node_timeout_s, NULL);
}

void th_server_start_args(th_server *s, const char *const *args)
{
	server_start(s, 0, args);
}

void th_server_restart(th_server *s)
{
	server_launch(s);
}

void th_server_kill(th_server *s, int sig)
{
	if (s->pid <= 0)
		return;
	if (sig == SIGKILL) {
		kill(s->pid, SIGKILL);
		wait_for(s->pid, 10);
	} else {
		th_proc_stop(s->pid, 5);
	}
	s->pid = 0;
}

void th_server_stop(th_server *s)
{
	th_server_kill(s, SIGTERM);
	if (s->dir[0] && strncmp(s->dir, "/tmp/tessera-test-", 18) == 0 && !getenv("TESSERA_KEEP_TEST_DIRS")) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", s->dir);
	}
	s->dir[0] = '\0';
}

struct membuf {
	char *data;
	size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct membuf *b = arg;
	size_t add = size * n;
	char *grown = realloc(b->data, b->len + add + 1);
	if (!grown)
		return 0;
	memcpy(grown + b->len, p, add);
	b->data = grown;
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

static size_t gzip_body(const char *in, size_t n, unsigned char **out)
{
	z_stream z = {0};
	uLong cap = compressBound((uLong)n) + 64;
	*out = malloc(cap);
	deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)n;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	size_t len = z.total_out;
	deflateEnd(&z);
	return len;
}

/* One request; the reply's bytes in *buf (NUL-terminated, malloc'd) when not NULL. */
static long http_once(const th_server *s, const char *method, const char *path, const char *token,
		      const char *body, size_t bodylen, int gzip, struct membuf *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct membuf buf = {0};
	unsigned char *zipped = NULL;
	char url[512], auth[256];
	long status = 0;
	snprintf(url, sizeof(url), "%s%s", s->url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, s->pin);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (body) {
		if (gzip) {
			bodylen = gzip_body(body, bodylen, &zipped);
			body = (const char *)zipped;
			h = curl_slist_append(h, "Content-Encoding: gzip");
		}
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*out = buf;
	free(zipped);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

long th_http(const th_server *s, const char *method, const char *path, const char *token,
	     const char *body, size_t bodylen, int gzip, json_t **reply)
{
	struct membuf buf = {0};
	long status = http_once(s, method, path, token, body, bodylen, gzip, &buf);
	if (reply)
		*reply = buf.data ? json_loads(buf.data, 0, NULL) : NULL;
	free(buf.data);
	return status;
}

long th_http_bytes(const th_server *s, const char *method, const char *path, const char *token,
		   const void *body, size_t bodylen, char **out, size_t *outlen)
{
	struct membuf buf = {0};
	long status = http_once(s, method, path, token, (const char *)body, bodylen, 0, &buf);
	*out = buf.data ? buf.data : calloc(1, 1);
	*outlen = buf.len;
	return status;
}

static sqlite3 *db_open(const th_server *s)
{
	char path[400];
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/tessera.db", s->data);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", path);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

void th_db_digest(const th_server *s, char out[65])
{
	char path[400];
	snprintf(path, sizeof(path), "%s/tessera.db", s->data);
	th_file_digest(path, out);
}

void th_file_digest(const char *path, char out[65])
{
	sqlite3 *db = NULL;
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", path);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *tables, *rows;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[32];
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", -1,
			   &tables, NULL);
	while (sqlite3_step(tables) == SQLITE_ROW) {
		char sql[256];
		const char *name = (const char *)sqlite3_column_text(tables, 0);
		EVP_DigestUpdate(md, name, strlen(name));
		snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\"", name);
		cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &rows, NULL), SQLITE_OK);
		while (sqlite3_step(rows) == SQLITE_ROW) {
			for (int i = 0; i < sqlite3_column_count(rows); i++) {
				const unsigned char *v = sqlite3_column_text(rows, i);
				EVP_DigestUpdate(md, v ? (const char *)v : "\1NULL", v ? strlen((const char *)v) : 5);
				EVP_DigestUpdate(md, "\0", 1);
			}
		}
		sqlite3_finalize(rows);
	}
	sqlite3_finalize(tables);
	EVP_DigestFinal_ex(md, d, NULL);
	EVP_MD_CTX_free(md);
	ts_hex(d, 32, out);
	sqlite3_close(db);
}

int64_t th_db_int(const th_server *s, const char *sql)
{
	sqlite3 *db = db_open(s);
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s returned no row", sql);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

size_t th_db_ints(const th_server *s, const char *sql, int64_t *out, size_t cap)
{
	sqlite3 *db = db_open(s);
	sqlite3_stmt *st;
	size_t n = 0;
	int step;
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n < cap)
			out[n] = sqlite3_column_int64(st, 0);
		n++;
	}
	cr_assert_eq(step, SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

void th_enroll_token(const th_server *s, int uses, char *out, size_t cap)
{
	char body[64];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"uses\":%d}", uses);
	long status = th_http(s, "POST", "/api/v1/enroll-tokens", s->admin_token, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 201, "enroll token: HTTP %ld", status);
	snprintf(out, cap, "%s", json_string_value(json_object_get(reply, "token")));
	json_decref(reply);
}

int64_t th_client_enroll(const th_server *s, const char *name, char *state, size_t cap)
{
	char token[160], out[4096], sql[200];
	snprintf(state, cap, "%s/%s", s->dir, name);
	th_enroll_token(s, 1, token, sizeof(token));
	char *argv[] = {(char *)th_bin("tessera-client"), "enroll", (char *)s->url, token, "--state", state,
			"--name", (char *)name, "--no-bench", NULL};
	cr_assert_eq(th_run(argv, NULL, 60, out, sizeof(out)), 0, "enroll %s: %s", name, out);
	snprintf(sql, sizeof(sql), "SELECT id FROM nodes WHERE name = '%s'", name);
	int64_t id = th_db_int(s, sql);
	cr_assert_gt(id, 0, "node %s is not in the store", name);
	return id;
}

int64_t th_submit(const th_server *s, const char *body)
{
	json_t *reply = NULL;
	long status = th_http(s, "POST", "/api/v1/jobs", s->admin_token, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 201, "submit %s: HTTP %ld", body, status);
	int64_t id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	return id;
}

json_t *th_wait_job(const th_server *s, int64_t id, double timeout_s)
{
	char path[64];
	double end = ts_mono() + timeout_s;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	for (;;) {
		json_t *job = NULL;
		long status = th_http(s, "GET", path, s->admin_token, NULL, 0, 0, &job);
		if (status == 200) {
			const char *state = json_string_value(json_object_get(job, "state"));
			if (state && strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)
				return job;
		}
		json_decref(job);
		if (ts_mono() > end)
			return NULL;
		sleep_s(0.1);
	}
}

int64_t th_enroll_node(const th_server *s, const char *name, char *token, size_t cap)
{
	char enroll[160], body[400];
	json_t *reply = NULL;
	th_enroll_token(s, 1, enroll, sizeof(enroll));
	snprintf(body, sizeof(body),
		 "{\"token\":\"%s\",\"name\":\"%s\",\"platform\":\"test\",\"cores\":1}", enroll, name);
	long status = th_http(s, "POST", "/api/v1/nodes/enroll", NULL, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 201, "enroll %s: HTTP %ld", name, status);
	snprintf(token, cap, "%s", json_string_value(json_object_get(reply, "node_token")));
	int64_t id = json_integer_value(json_object_get(reply, "node_id"));
	json_decref(reply);
	return id;
}

void th_enroll_rated(const th_server *s, const char *name, double rate, char *token, size_t cap)
{
	char enroll[160], body[512];
	json_t *reply = NULL;
	th_enroll_token(s, 1, enroll, sizeof(enroll));
	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"name\":\"%s\",\"platform\":\"test\",\"cores\":4,"
		 "\"rates\":{\"montecarlo_pi\":%g}}", enroll, name, rate);
	cr_assert_eq(th_http(s, "POST", "/api/v1/nodes/enroll", NULL, body, strlen(body), 0, &reply), 201);
	snprintf(token, cap, "%s", json_string_value(json_object_get(reply, "node_token")));
	json_decref(reply);
}

void th_sleep(double s)
{
	sleep_s(s);
}

json_t *th_fetch(const th_server *s, const char *node_token, int max)
{
	char body[64];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"max_units\":%d}", max);
	long status = th_http(s, "POST", "/api/v1/work/fetch", node_token, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 200, "fetch: HTTP %ld", status);
	return reply;
}

json_t *th_report(const th_server *s, const char *node_token, int64_t unit, uint64_t hits)
{
	char body[200];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"hits\":%llu},\"wall_s\":0.01}]}",
		 (long long)unit, (unsigned long long)hits);
	long status = th_http(s, "POST", "/api/v1/work/report", node_token, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 200, "report: HTTP %ld", status);
	return reply;
}

void th_db_exec(const th_server *s, const char *sql)
{
	char path[400], *err = NULL;
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/tessera.db", s->data);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s: %s", sql, err ? err : "");
	sqlite3_close(db);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	long *retry = arg;
	size_t len = size * n;
	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
		*retry = strtol(p + 12, NULL, 10);
	return len;
}

long th_http_from(const th_server *s, const char *source, const char *method, const char *path,
		  const char *token, long *retry_after)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct membuf buf = {0};
	char url[512], auth[256];
	long status = 0, retry = -1;
	snprintf(url, sizeof(url), "%s%s", s->url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_INTERFACE, source);
	curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, s->pin);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &retry);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (retry_after)
		*retry_after = retry;
	free(buf.data);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}
