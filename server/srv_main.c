/* tessera-server: init a data dir, run the HTTPS server, print the pin. */
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "srv_auth.h"
#include "srv_backup.h"
#include "srv_db.h"
#include "srv_http.h"
#include "srv_lock.h"
#include "srv_boinc.h"
#include "srv_tls.h"
#include "srv_work.h"
#include "ts_token.h"
#include "ts_util.h"

#define DEFAULT_PORT 8443

static const char usage_main[] =
	"usage: tessera-server COMMAND [options]\n"
	"\n"
	"The Tessera work-unit server (HTTPS, SQLite store).\n"
	"\n"
	"commands:\n"
	"  init --data DIR [--admin NAME]     create the data dir: key, certificate, database and the\n"
	"                                     first admin (password from $TESSERA_ADMIN_PASSWORD,\n"
	"                                     else generated and printed once)\n"
	"  run --data DIR [--listen HOST:PORT] [--user NAME] [--quiet] [limits]\n"
	"                                     serve the API and the dashboard (default\n"
	"                                     0.0.0.0:8443; port 0 picks a free port, written to\n"
	"                                     DIR/server.port); 'run --help' lists the limits\n"
	"  pin --data DIR                     print the server's public-key pin\n"
	"  compact --data DIR [--days N]      delete the units of jobs finished over N days ago\n"
	"                                     (default 7); jobs keep their results\n"
	"  backup --data DIR FILE [--force]   a consistent copy of the store, also while serving\n"
	"  restore --data DIR FILE            put a copy in place of the store (server stopped;\n"
	"                                     the current one is kept as tessera.db.before-restore)\n"
	"\n"
	"Run 'tessera-server COMMAND --help' for a command's options.\n";

static const char usage_init[] =
	"usage: tessera-server init --data DIR [--admin NAME]\n"
	"  Creates DIR (0700) with server.key, server.crt and tessera.db (all 0600), and the admin\n"
	"  user NAME (default 'admin'). Prints the pin that clients need and the admin password\n"
	"  unless $TESSERA_ADMIN_PASSWORD gave it.\n";
static const char usage_run[] =
	"usage: tessera-server run --data DIR [--listen HOST:PORT] [--user NAME] [--quiet] [limits]\n"
	"  Serves the API and the dashboard over HTTPS until SIGINT or SIGTERM.\n"
	"  --listen HOST:PORT          default 0.0.0.0:8443; port 0 picks a free one (DIR/server.port)\n"
	"  --user NAME                 when started as root: drop to this user after binding\n"
	"  --quiet                     log only errors\n"
	"limits (default, range):\n";
static const char usage_compact[] =
	"usage: tessera-server compact --data DIR [--days N]\n"
	"  Deletes the units and replicas of jobs that finished more than N days ago (default 7,\n"
	"  0: all finished jobs), in small transactions, so it can run beside a live server.\n"
	"  Jobs keep their results; their per-unit history (units by node, convergence) goes.\n";
static const char usage_backup[] =
	"usage: tessera-server backup --data DIR FILE [--force]\n"
	"  Copies DIR/tessera.db to FILE with SQLite's online backup, also while the server serves\n"
	"  (one snapshot: the copy is consistent; the server is not stopped). FILE is written as\n"
	"  FILE.tmp, checked (integrity_check) and renamed, so it is a complete copy or absent. It is\n"
	"  one self-contained SQLite file (no -wal). An existing FILE is refused unless --force.\n"
	"  The key and certificate are not in it: keep a copy of DIR/server.key and server.crt.\n";
static const char usage_restore[] =
	"usage: tessera-server restore --data DIR FILE\n"
	"  Replaces DIR/tessera.db by a copy of FILE (a backup, or a tessera.db.before-vN left by an\n"
	"  upgrade), once the copy passes the checks: SQLite integrity_check, Tessera's tables and a\n"
	"  schema version this server knows (an older one is upgraded at the next start). The\n"
	"  current store is kept as DIR/tessera.db.before-restore. Refused while a server runs on DIR.\n";
static const char usage_pin[] =
	"usage: tessera-server pin --data DIR\n"
	"  Prints the pin (sha256//base64 of the server's public key).\n";

struct opts {
	const char *data;
	const char *admin;
	const char *listen;
	const char *user;
	const char *days;
	const char *file; /* backup, restore: the copy */
	int quiet, force;
	srv_config cfg;
};

/* The numeric settings of run: one row each, parsed and range-checked by one loop. */
static const struct config_row {
	const char *name;
	size_t offset;
	int64_t def, min, max;
	const char *help;
} config_rows[] = {
	{"node-timeout", offsetof(srv_config, node_timeout_s), 120, 2, 86400,
	 "seconds a silent node keeps its leases"},
	{"rate-limit", offsetof(srv_config, rate_limit), 200, 0, 1000000,
	 "requests/s per address and per token (0: off)"},
	{"login-rate", offsetof(srv_config, login_rate), 30, 0, 100000,
	 "login, enroll and password-change attempts per minute per address or IPv6 /64 (0: off)"},
	{"max-connections", offsetof(srv_config, max_connections), 4096, 1, 1000000,
	 "open connections"},
	{"max-connections-per-address", offsetof(srv_config, max_conns_per_addr), 512, 1, 1000000,
	 "open connections from one address"},
	{"request-timeout", offsetof(srv_config, request_timeout_s), 20, 1, 3600,
	 "seconds from connect to the first complete request"},
	{"idle-timeout", offsetof(srv_config, idle_timeout_s), 60, 1, 3600,
	 "seconds a kept-alive connection may wait for its next request"},
	{"group-commit", offsetof(srv_config, group_commit), 1, 0, 1,
	 "1: commit many requests at once, every reply after its commit"},
	{"kdf-workers", offsetof(srv_config, kdf_workers), 2, 1, 64,
	 "threads that check and hash passwords (32 MiB each)"},
	{"kdf-queue", offsetof(srv_config, kdf_queue), 8, 1, 1024,
	 "password checks queued or running at once; more get 429"},
	{"busy-timeout", offsetof(srv_config, busy_timeout_ms), 5000, 1, 600000,
	 "ms a request waits for a locked store before a 503"},
};

static void config_defaults(srv_config *cfg)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(config_rows); i++)
		*(int64_t *)((char *)cfg + config_rows[i].offset) = config_rows[i].def;
}

static int config_set(srv_config *cfg, size_t row, const char *value)
{
	const struct config_row *c = &config_rows[row];
	uint64_t v;
	if (ts_parse_u64(value, &v) || (int64_t)v < c->min || (int64_t)v > c->max) {
		fprintf(stderr, "tessera-server: --%s wants %lld..%lld, got '%s'\n", c->name,
			(long long)c->min, (long long)c->max, value);
		return 2;
	}
	*(int64_t *)((char *)cfg + c->offset) = (int64_t)v;
	return 0;
}

static void usage_limits(FILE *f)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(config_rows); i++)
		fprintf(f, "  --%-26s %s (%lld, %lld..%lld)\n", config_rows[i].name, config_rows[i].help,
			(long long)config_rows[i].def, (long long)config_rows[i].min, (long long)config_rows[i].max);
}

static void data_path(char *out, size_t n, const char *dir, const char *file)
{
	snprintf(out, n, "%s/%s", dir, file);
}

/* Parses the options every command shares; returns 0, or the exit code to stop with. */
static int parse_opts(int argc, char **argv, const char *usage, struct opts *o)
{
	enum { OPT_CONFIG = 256 };
	struct option longopts[16 + TS_ARRAY_LEN(config_rows)] = {
		{"data", required_argument, NULL, 'd'},
		{"admin", required_argument, NULL, 'a'},
		{"listen", required_argument, NULL, 'l'},
		{"user", required_argument, NULL, 'u'},
		{"days", required_argument, NULL, 'D'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"force", no_argument, NULL, 'f'},
	};
	size_t n = 8;
	for (size_t i = 0; i < TS_ARRAY_LEN(config_rows); i++)
		longopts[n++] = (struct option){config_rows[i].name, required_argument, NULL, OPT_CONFIG + (int)i};
	longopts[n] = (struct option){NULL, 0, NULL, 0};
	int c, run = usage == usage_run;
	config_defaults(&o->cfg);
	optind = 1;
	while ((c = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		if (c >= OPT_CONFIG && run) {
			if (config_set(&o->cfg, (size_t)(c - OPT_CONFIG), optarg))
				return 2;
			continue;
		}
		switch (c) {
		case 'd': o->data = optarg; break;
		case 'a': o->admin = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'u': o->user = optarg; break;
		case 'D': o->days = optarg; break;
		case 'q': o->quiet = 1; break;
		case 'f': o->force = 1; break;
		case 'h':
			fputs(usage, stdout);
			if (run)
				usage_limits(stdout);
			return -1;
		default:
			fputs(usage, stderr);
			if (run)
				usage_limits(stderr);
			return 2;
		}
	}
	/* backup and restore name their copy: one argument after the options. */
	int wants_file = usage == usage_backup || usage == usage_restore;
	if (wants_file && optind < argc)
		o->file = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "tessera-server: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	if (wants_file && (!o->file || !*o->file)) {
		fprintf(stderr, "tessera-server: FILE is required\n%s", usage);
		return 2;
	}
	if (!o->data) {
		fprintf(stderr, "tessera-server: --data DIR is required\n%s", usage);
		return 2;
	}
	/* Each option belongs to one command: a misplaced one is a mistake worth saying. */
	const struct {
		const char *name;
		int given, ok;
	} owned[] = {
		{"--admin", o->admin != NULL, usage == usage_init},
		{"--listen", o->listen != NULL, run},
		{"--user", o->user != NULL, run},
		{"--quiet", o->quiet, run},
		{"--days", o->days != NULL, usage == usage_compact},
		{"--force", o->force, usage == usage_backup},
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(owned); i++) {
		if (owned[i].given && !owned[i].ok) {
			fprintf(stderr, "tessera-server: %s does not apply here\n%s", owned[i].name, usage);
			return 2;
		}
	}
	return 0;
}

static int cmd_pin(const struct opts *o)
{
	const char *dir = o->data;
	char cert[4096], pin[TS_PIN_MAX];
	unsigned char digest[32];
	data_path(cert, sizeof(cert), dir, "server.crt");
	if (srv_tls_pin(cert, digest)) {
		fprintf(stderr, "tessera-server: cannot read %s (run tessera-server init first)\n", cert);
		return 1;
	}
	ts_pin_format(digest, pin);
	printf("%s\n", pin);
	return 0;
}

static int cmd_compact(const struct opts *o)
{
	char dbpath[4096];
	uint64_t days = 7;
	srv_db *db = NULL;
	int64_t removed[2] = {0, 0};
	if (o->days && (ts_parse_u64(o->days, &days) || days > 36500)) {
		fprintf(stderr, "tessera-server: --days wants 0..36500, got '%s'\n", o->days);
		return 2;
	}
	data_path(dbpath, sizeof(dbpath), o->data, "tessera.db");
	if (srv_db_open(dbpath, 0, &db))
		return 1;
	int64_t before = ts_now() - (int64_t)days * 86400 + (days ? 0 : 1);
	static const enum srv_stmt steps[2] = {Q_COMPACT_REPLICAS, Q_COMPACT_UNITS};
	for (int s = 0; s < 2; s++) {
		for (;;) {
			ts_err result = SRV_EXEC(db, steps[s], before, 10000);
			if (result) {
				srv_db_close(db);
				return 1;
			}
			int n = sqlite3_changes(srv_db_handle(db));
			removed[s] += n;
			if (n == 0)
				break;
		}
	}
	sqlite3_exec(srv_db_handle(db), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	srv_db_close(db);
	printf("compacted: %lld units and %lld replicas of jobs finished before %lld days ago\n",
	       (long long)removed[1], (long long)removed[0], (long long)days);
	return 0;
}

static int cmd_backup(const struct opts *o)
{
	char store[4096], why[1024];
	int version;
	data_path(store, sizeof(store), o->data, "tessera.db");
	double start = ts_mono();
	if (srv_backup_store(store, o->file, o->force, &version, why, sizeof(why))) {
		fprintf(stderr, "tessera-server: backup failed: %s\n", why);
		return 1;
	}
	printf("backed up %s (schema version %d) to %s in %.1f s\n", store, version, o->file, ts_mono() - start);
	return 0;
}

static int cmd_restore(const struct opts *o)
{
	char store[4096], why[1024];
	int version, lock;
	data_path(store, sizeof(store), o->data, "tessera.db");
	struct stat st;
	if (stat(o->data, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "tessera-server: restore failed: no data dir %s (tessera-server init --data %s"
			" makes one, with the key and certificate a server needs)\n", o->data, o->data);
		return 1;
	}
	/* Held until the store is swapped: no server starts on one half swapped. */
	ts_err locked = srv_lock_take(o->data, &lock, why, sizeof(why));
	if (locked) {
		fprintf(stderr, "tessera-server: restore refused: %s%s\n", why,
			locked == TS_ERR_CONFLICT ? "; stop it first" : "");
		return 1;
	}
	int had_store = access(store, F_OK) == 0;
	if (srv_backup_restore(o->data, o->file, &version, why, sizeof(why))) {
		fprintf(stderr, "tessera-server: restore failed: %s; %s is unchanged\n", why, store);
		srv_lock_release(lock);
		return 1;
	}
	srv_lock_release(lock);
	printf("restored %s (schema version %d) to %s\n", o->file, version, store);
	if (had_store)
		printf("the previous store is kept as %s.before-restore\n", store);
	if (version < srv_db_schema_latest())
		printf("it will be upgraded from schema version %d to %d at the next start\n", version,
		       srv_db_schema_latest());
	return 0;
}

static int cmd_init(const struct opts *o)
{
	char key[4096], cert[4096], dbpath[4096], hash[SRV_PW_HASH_MAX], pin[TS_PIN_MAX];
	char generated[64] = "";
	unsigned char digest[32];
	const char *admin = o->admin ? o->admin : "admin";
	const char *password = getenv("TESSERA_ADMIN_PASSWORD");
	srv_db *db = NULL;
	int rc = 1;
	if (strlen(admin) < 1 || strlen(admin) > 64) {
		fprintf(stderr, "tessera-server: the admin name must have 1 to 64 characters\n");
		return 2;
	}
	if (password && (strlen(password) < 8 || strlen(password) > 1024)) {
		fprintf(stderr, "tessera-server: TESSERA_ADMIN_PASSWORD must have 8 to 1024 characters\n");
		return 2;
	}
	data_path(key, sizeof(key), o->data, "server.key");
	data_path(cert, sizeof(cert), o->data, "server.crt");
	data_path(dbpath, sizeof(dbpath), o->data, "tessera.db");
	if (access(dbpath, F_OK) == 0) {
		fprintf(stderr, "tessera-server: %s is already initialised\n", o->data);
		return 1;
	}
	if (ts_mkdirs(o->data, 0700)) {
		fprintf(stderr, "tessera-server: cannot create %s\n", o->data);
		return 1;
	}
	if (!password) {
		unsigned char raw[16];
		if (ts_random(raw, sizeof(raw)))
			goto out;
		ts_b64url_encode(raw, sizeof(raw), generated);
		password = generated;
	}
	if (srv_tls_generate(key, cert) || srv_tls_pin(cert, digest)) {
		fprintf(stderr, "tessera-server: cannot create the key and certificate\n");
		goto out;
	}
	if (srv_boinc_key_ensure(o->data)) {
		fprintf(stderr, "tessera-server: cannot create the BOINC code-signing key\n");
		goto out;
	}
	if (srv_db_open(dbpath, 1, &db) || srv_auth_hash_password(password, hash))
		goto out;
	sqlite3_stmt *st = srv_db_stmt(db, Q_USER_INSERT);
	sqlite3_bind_text(st, 1, admin, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, "admin", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, ts_now());
	if (srv_db_exec(db, st))
		goto out;
	ts_pin_format(digest, pin);
	printf("initialised %s\n", o->data);
	printf("pin: %s\n", pin);
	printf("admin: %s\n", admin);
	if (*generated)
		printf("admin password (shown once): %s\n", generated);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "tessera-server: init failed\n");
	srv_db_close(db);
	return rc;
}

static int parse_listen(const char *spec, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(spec, ':');
	char *end;
	if (!colon || colon == spec || (size_t)(colon - spec) >= hostlen)
		return -1;
	long p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 0 || p > 65535)
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	/* [::1]:8443 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	*port = (int)p;
	return 0;
}

static void on_sweep(evutil_socket_t fd, short events, void *arg)
{
	srv_work_sweep(arg, ts_now());
}

static void on_police(evutil_socket_t fd, short events, void *arg)
{
	srv_http_sweep(arg);
}

/* After binding (ports below 1024 need root), run as an unprivileged user that owns the data. */
static int drop_privileges(const char *user, const char *data)
{
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		fprintf(stderr, "tessera-server: no user '%s'\n", user);
		return -1;
	}
	if (getuid() != 0) {
		fprintf(stderr, "tessera-server: --user needs root; already running unprivileged\n");
		return -1;
	}
	struct stat st;
	if (stat(data, &st) != 0 || st.st_uid != pw->pw_uid) {
		fprintf(stderr, "tessera-server: %s must belong to %s (chown -R %s %s)\n", data, user, user, data);
		return -1;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0 || setuid(0) == 0) {
		fprintf(stderr, "tessera-server: cannot drop privileges to %s\n", user);
		return -1;
	}
	return 0;
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
	srv_ctx *ctx = arg;
	if (!ctx->quiet)
		fprintf(stderr, "tessera-server: signal %d, stopping\n", (int)sig);
	event_base_loopexit(ctx->base, NULL);
}

static int cmd_run(const struct opts *o)
{
	char key[4096], cert[4096], dbpath[4096], portfile[4096], host[256] = "0.0.0.0", pin[TS_PIN_MAX];
	int port = DEFAULT_PORT, rc = 1, lock = -1;
	srv_ctx ctx = {.quiet = o->quiet, .cfg = o->cfg, .node_timeout_s = o->cfg.node_timeout_s};
	struct event *sigint = NULL, *sigterm = NULL, *sweep = NULL, *police = NULL;
	if (o->listen && parse_listen(o->listen, host, sizeof(host), &port)) {
		fprintf(stderr, "tessera-server: --listen wants HOST:PORT, got '%s'\n", o->listen);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(ctx.data_dir, sizeof(ctx.data_dir), "%s", o->data);
	data_path(key, sizeof(key), o->data, "server.key");
	data_path(cert, sizeof(cert), o->data, "server.crt");
	data_path(dbpath, sizeof(dbpath), o->data, "tessera.db");
	data_path(portfile, sizeof(portfile), o->data, "server.port");
	if (srv_tls_context(key, cert, &ctx.ssl) || srv_tls_pin(cert, ctx.pin)) {
		fprintf(stderr, "tessera-server: cannot load the key and certificate from %s\n", o->data);
		goto out;
	}
	if (access(dbpath, F_OK) != 0) {
		fprintf(stderr, "tessera-server: no database at %s (run tessera-server init first)\n", dbpath);
		goto out;
	}
	ctx.base = event_base_new();
	if (!ctx.base || event_base_priority_init(ctx.base, SRV_PRIORITIES) || srv_http_start(&ctx, host, port))
		goto out;
	sigint = evsignal_new(ctx.base, SIGINT, on_signal, &ctx);
	sigterm = evsignal_new(ctx.base, SIGTERM, on_signal, &ctx);
	if (!sigint || !sigterm || evsignal_add(sigint, NULL) || evsignal_add(sigterm, NULL))
		goto out;
	/* Lost nodes are swept a few times per timeout, so their leases end soon after it. */
	struct timeval every = {ctx.node_timeout_s >= 30 ? 10 : ctx.node_timeout_s / 3 + 1, 0};
	sweep = event_new(ctx.base, -1, EV_PERSIST, on_sweep, &ctx);
	if (!sweep || event_add(sweep, &every))
		goto out;
	struct timeval second = {1, 0};
	police = event_new(ctx.base, -1, EV_PERSIST, on_police, &ctx);
	if (!police || event_add(police, &second))
		goto out;
	if (o->user && drop_privileges(o->user, o->data))
		goto out;
	/* Only now: SQLite creates the -wal and -shm files at open (and the lock file here), and
	 * they must belong to the user that runs the server, not to root. The lock is held until
	 * exit, so that restore cannot swap the store under this server. */
	char why[1024];
	if (srv_lock_take(o->data, &lock, why, sizeof(why))) {
		fprintf(stderr, "tessera-server: %s\n", why);
		goto out;
	}
	if (srv_db_open(dbpath, 0, &ctx.db))
		goto out;
	sqlite3_busy_timeout(srv_db_handle(ctx.db), (int)o->cfg.busy_timeout_ms);
	srv_db_set_group(ctx.db, (int)ctx.cfg.group_commit);
	/* After the privilege drop: keys made now (a store older than BOINC support) are the
	 * server user's. */
	if (srv_boinc_start(&ctx))
		goto out;
	char portstr[16];
	int n = snprintf(portstr, sizeof(portstr), "%d\n", ctx.port);
	if (ts_write_file(portfile, portstr, (size_t)n, 0600)) {
		fprintf(stderr, "tessera-server: cannot write %s\n", portfile);
		goto out;
	}
	ts_pin_format(ctx.pin, pin);
	fprintf(stderr, "tessera-server: listening on https://%s:%d (pin %s)\n",
		strchr(host, ':') ? "[::]" : host, ctx.port, pin);
	event_base_dispatch(ctx.base);
	unlink(portfile);
	rc = 0;
out:
	if (sweep)
		event_free(sweep);
	if (police)
		event_free(police);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	srv_http_stop(&ctx);
	srv_boinc_stop(&ctx);
	if (ctx.base)
		event_base_free(ctx.base);
	srv_db_close(ctx.db);
	srv_lock_release(lock);
	SSL_CTX_free(ctx.ssl);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		const char *usage;
		int (*run)(const struct opts *o);
	} cmds[] = {
		{"init", usage_init, cmd_init},
		{"run", usage_run, cmd_run},
		{"pin", usage_pin, cmd_pin},
		{"compact", usage_compact, cmd_compact},
		{"backup", usage_backup, cmd_backup},
		{"restore", usage_restore, cmd_restore},
	};
	struct opts o = {0};
	umask(077); /* keys, the store and its WAL are private to the server's user */
	if (argc < 2) {
		fputs(usage_main, stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage_main, stdout);
		return 0;
	}
	for (size_t i = 0; i < TS_ARRAY_LEN(cmds); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		int rc = parse_opts(argc - 1, argv + 1, cmds[i].usage, &o);
		if (rc)
			return rc < 0 ? 0 : rc;
		return cmds[i].run(&o);
	}
	fprintf(stderr, "tessera-server: unknown command '%s'\n%s", argv[1], usage_main);
	return 2;
}
