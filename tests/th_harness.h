/* th_harness: real servers and clients for integration tests, on 127.0.0.1 in temp dirs.
 * Every process a test starts is stopped by th_server_stop / th_proc_stop, also on failure
 * paths (Criterion runs each test in its own process; the fini hook still runs). */
#ifndef TH_HARNESS_H
#define TH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define TH_ADMIN_PASSWORD "admin-password-for-tests"

typedef struct th_server {
	char dir[256];      /* temp dir holding data/, client states and logs */
	char data[300];     /* the server's --data */
	char url[128];      /* https://127.0.0.1:PORT */
	char pin[64];       /* sha256//... */
	pid_t pid;
	int port;           /* kept across restarts, so clients find the server again */
	int node_timeout_s; /* --node-timeout, 0: the server's default */
	const char *extra[9]; /* more `run` arguments, NULL-terminated */
	char admin_token[128];
} th_server;

/* Makes a temp dir, inits a server there and starts it on a free port; logs in the admin.
 * Aborts the test (cr_assert) on failure. */
void th_server_start(th_server *s);
/* The same with a node timeout (seconds) for lost-node tests. */
void th_server_start_timeout(th_server *s, int node_timeout_s);
/* The same with extra `run` arguments (NULL-terminated, at most 8). */
void th_server_start_args(th_server *s, const char *const *args);
/* Starts the server again on the same data dir (a new port) after a stop or a kill. */
void th_server_restart(th_server *s);
/* SIGTERM (then SIGKILL after 5 s) and wait; with sig = SIGKILL kills at once. */
void th_server_kill(th_server *s, int sig);
/* Stops the server and removes the temp dir. */
void th_server_stop(th_server *s);

/* A path to a built program ("tessera-server", "tessera-client", "tessera"). */
const char *th_bin(const char *name);

/* Starts argv with extra environment entries (NULL-terminated, may be NULL); stdout and stderr
 * go to logfile (may be NULL: /dev/null). */
pid_t th_spawn(char *const argv[], char *const env[], const char *logfile);
/* Runs argv to completion (at most timeout_s); returns its exit status, or -1 if it had to be
 * killed. Its output goes to out (NUL-terminated, truncated to cap) when out is not NULL. */
int th_run(char *const argv[], char *const env[], double timeout_s, char *out, size_t cap);
/* SIGTERM, then SIGKILL after grace_s; returns the exit status (or 128+signal). */
int th_proc_stop(pid_t pid, double grace_s);

/* th_http from a given loopback source address (e.g. "127.0.0.2"); *retry_after gets the
 * Retry-After header's seconds (or -1) when not NULL. */
long th_http_from(const th_server *s, const char *source, const char *method, const char *path,
		  const char *token, long *retry_after);
/* One HTTPS request, pinned to the server's key. body may be NULL; gzip sends it gzipped.
 * Returns the HTTP status (0 on transport failure); *reply gets the parsed JSON or NULL. */
long th_http(const th_server *s, const char *method, const char *path, const char *token,
	     const char *body, size_t bodylen, int gzip, json_t **reply);

/* th_http with raw bytes both ways: *out gets the reply's bytes (NUL-terminated, malloc'd: free
 * it), *outlen their number. */
long th_http_bytes(const th_server *s, const char *method, const char *path, const char *token,
		   const void *body, size_t bodylen, char **out, size_t *outlen);

/* A digest of every row of every table of the server's store: equal digests, same data. */
void th_db_digest(const th_server *s, char out[65]);
/* The same for the database file at path (a backup, say). */
void th_file_digest(const char *path, char out[65]);
/* Runs SQL on the server's store (for test set-up the API cannot make, e.g. expired tokens). */
void th_db_exec(const th_server *s, const char *sql);
/* Runs a query that returns one integer on the server's store. */
int64_t th_db_int(const th_server *s, const char *sql);
/* Runs a query of one integer column on the server's store; writes up to cap values to out and
 * returns how many rows there were (may exceed cap). */
size_t th_db_ints(const th_server *s, const char *sql, int64_t *out, size_t cap);

/* Creates an enrollment token (admin) with that many uses. */
void th_enroll_token(const th_server *s, int uses, char *out, size_t cap);
/* Enrolls a real `tessera-client enroll --no-bench` called name with a one-use token, its state
 * in state (DIR/name, cap bytes). Returns the node's id. */
int64_t th_client_enroll(const th_server *s, const char *name, char *state, size_t cap);
/* Enrolls a node through the API (as a test-driven node); writes its token. Returns its id. */
int64_t th_enroll_node(const th_server *s, const char *name, char *token, size_t cap);
/* Enrolls a node that states its measured montecarlo_pi rate (indices/s, 4 cores); writes its
 * token. */
void th_enroll_rated(const th_server *s, const char *name, double rate, char *token, size_t cap);
/* Sleeps s seconds (through signals). */
void th_sleep(double s);
/* Fetches up to max units as a node; returns the reply (units array inside). */
json_t *th_fetch(const th_server *s, const char *node_token, int max);
/* Reports one montecarlo_pi result; returns the reply ({"accepted","rejected"}). */
json_t *th_report(const th_server *s, const char *node_token, int64_t unit, uint64_t hits);
/* Submits a job body as the admin; returns its id. */
int64_t th_submit(const th_server *s, const char *body);
/* Polls the job until it is no longer queued or running (at most timeout_s); returns its JSON. */
json_t *th_wait_job(const th_server *s, int64_t id, double timeout_s);

#endif
