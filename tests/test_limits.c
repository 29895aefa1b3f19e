/* Transport and limits against a real server: old TLS refused, rate limits (429 with
 * Retry-After), slow-loris and connection caps, header floods. The server must keep serving
 * everyone else throughout. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "th_harness.h"
#include "ts_util.h"

static th_server srv;

static void teardown(void)
{
	th_server_stop(&srv);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* A raw TCP connection to the server (no TLS, nothing sent). */
static int raw_connect(const th_server *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Whether the server closed fd within timeout_s (a read returns 0 or an error). */
static int closed_within(int fd, double timeout_s)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, (int)(timeout_s * 1000)) <= 0)
		return 0;
	char buf[256];
	return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0;
}

static int s_client(const th_server *s, const char *proto, char *out, size_t cap)
{
	char connect[64];
	snprintf(connect, sizeof(connect), "127.0.0.1:%d", s->port);
	/* SECLEVEL=0 so the client really offers old versions: the refusal must be the server's. */
	char *argv[] = {"/usr/bin/openssl", "s_client", "-connect", connect, (char *)proto, "-cipher",
			"DEFAULT:@SECLEVEL=0", NULL};
	return th_run(argv, NULL, 20, out, cap);
}

Test(limits, tls_1_0_and_1_1_are_refused, .fini = teardown, .timeout = 60)
{
	char out[16384];
	th_server_start(&srv);
	cr_expect_neq(s_client(&srv, "-tls1", out, sizeof(out)), 0, "TLS 1.0 accepted: %s", out);
	cr_expect(strstr(out, "alert protocol version") && strstr(out, "Cipher is (NONE)"),
		  "TLS 1.0 not refused by the server: %s", out);
	cr_expect_neq(s_client(&srv, "-tls1_1", out, sizeof(out)), 0, "TLS 1.1 accepted");
	cr_expect(strstr(out, "alert protocol version") != NULL, "TLS 1.1 not refused: %s", out);
	cr_expect_eq(s_client(&srv, "-tls1_2", out, sizeof(out)), 0, "TLS 1.2 refused: %s", out);
	cr_expect(strstr(out, "TLSv1.2") != NULL);
	cr_expect(strstr(out, "ECDHE") != NULL, "TLS 1.2 without forward secrecy: %s", out);
	cr_expect_eq(s_client(&srv, "-tls1_3", out, sizeof(out)), 0, "TLS 1.3 refused");
	/* Plain HTTP on the TLS port gets nothing useful. */
	int fd = raw_connect(&srv);
	const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	cr_assert_eq(send(fd, get, strlen(get), 0), (ssize_t)strlen(get));
	char buf[512] = "";
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 3000) > 0)
		recv(fd, buf, sizeof(buf) - 1, 0);
	cr_expect(!strstr(buf, "\"status\""), "the API answered over plaintext");
	close(fd);
}

Test(limits, rate_limit_answers_429_and_spares_others, .fini = teardown, .timeout = 60)
{
	const char *args[] = {"--rate-limit", "10", NULL};
	th_server_start_args(&srv, args);
	int limited = 0, ok = 0;
	long retry = -1;
	for (int i = 0; i < 60; i++) {
		long r = -1;
		long status = th_http_from(&srv, "127.0.0.2", "GET", "/healthz", NULL, &r);
		if (status == 429) {
			limited++;
			retry = r;
		} else if (status == 200) {
			ok++;
		}
	}
	cr_expect_gt(limited, 0, "60 requests at a limit of 10/s (burst 20) were never refused");
	cr_expect_geq(ok, 15, "the burst was not honoured (%d ok)", ok);
	cr_expect_geq(retry, 1, "no Retry-After with the 429");
	/* Another address is served meanwhile; the flooder is served again after waiting. */
	cr_expect_eq(th_http_from(&srv, "127.0.0.3", "GET", "/healthz", NULL, NULL), 200);
	sleep_s((double)retry + 0.2);
	cr_expect_eq(th_http_from(&srv, "127.0.0.2", "GET", "/healthz", NULL, NULL), 200);
}

Test(limits, login_attempts_are_limited, .fini = teardown, .timeout = 60)
{
	const char *args[] = {"--login-rate", "5", NULL};
	th_server_start_args(&srv, args);
	const char *body = "{\"username\":\"admin\",\"password\":\"guess\"}";
	long status = 0;
	int tries = 0;
	for (; tries < 20 && status != 429; tries++)
		status = th_http(&srv, "POST", "/api/v1/login", NULL, body, strlen(body), 0, NULL);
	cr_expect_eq(status, 429, "password guessing was never slowed down");
	cr_expect_leq(tries, 6);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", srv.admin_token, NULL, 0, 0, NULL), 200);
}

Test(limits, slow_loris_is_cut_off, .fini = teardown, .timeout = 60)
{
	const char *args[] = {"--request-timeout", "2", NULL};
	th_server_start_args(&srv, args);
	int fd = raw_connect(&srv);
	/* A byte now and then never makes a request. */
	cr_assert_eq(send(fd, "\x16", 1, 0), 1);
	double t0 = ts_mono();
	int closed = 0;
	while (!closed && ts_mono() - t0 < 8) {
		cr_expect_eq(th_http(&srv, "GET", "/healthz", NULL, NULL, 0, 0, NULL), 200, "others are not served");
		closed = closed_within(fd, 0.5);
		if (!closed)
			send(fd, "\x03", 1, MSG_NOSIGNAL);
	}
	cr_expect(closed, "a connection that never completed a request was kept %.1f s", ts_mono() - t0);
	cr_expect_lt(ts_mono() - t0, 5.0);
	close(fd);
}

Test(limits, connections_per_address_are_capped, .fini = teardown, .timeout = 60)
{
	const char *args[] = {"--max-connections-per-address", "4", "--request-timeout", "30", NULL};
	th_server_start_args(&srv, args);
	int fds[10], gone[10] = {0}, closed = 0;
	for (int i = 0; i < 10; i++)
		fds[i] = raw_connect(&srv);
	/* The server's sweep closes the newest 6, whenever it runs: wait for them (20 s at most,
	 * against a sweep every second), then the oldest 4 must still be open. */
	double t0 = ts_mono();
	while (closed < 6 && ts_mono() - t0 < 20) {
		for (int i = 0; i < 10; i++)
			if (!gone[i] && closed_within(fds[i], 0.05)) {
				gone[i] = 1;
				closed++;
			}
	}
	cr_expect_eq(closed, 6, "%d of 10 connections closed at a cap of 4", closed);
	for (int i = 0; i < 4; i++)
		cr_expect(!gone[i] && !closed_within(fds[i], 0.1), "connection %d of the oldest 4 was closed", i);
	for (int i = 0; i < 10; i++)
		close(fds[i]);
	/* Once they are gone the address is served again (by the next sweep at the latest). */
	long status = 0;
	t0 = ts_mono();
	while (status != 200 && ts_mono() - t0 < 20) {
		status = th_http(&srv, "GET", "/healthz", NULL, NULL, 0, 0, NULL);
		if (status != 200)
			sleep_s(0.2);
	}
	cr_expect_eq(status, 200, "the address was not served again after closing its connections");
}

/* Sends a raw request over TLS (openssl s_client, the request from a file) and returns the
 * first 200 bytes of the answer in out. */
static void tls_raw_request(const th_server *s, const char *req, size_t n, char *out, size_t cap)
{
	char reqfile[] = "/tmp/tessera-flood-XXXXXX", cmd[512];
	int fd = mkstemp(reqfile);
	cr_assert(fd >= 0);
	cr_assert(write(fd, req, n) == (ssize_t)n);
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/openssl s_client -quiet -connect 127.0.0.1:%d < %s 2>/dev/null"
		 " | head -c 200", s->port, reqfile);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	size_t got = fread(out, 1, cap - 1, p);
	out[got] = '\0';
	pclose(p);
	unlink(reqfile);
}

Test(limits, header_flood_is_refused, .fini = teardown, .timeout = 60)
{
	char out[4096];
	th_server_start(&srv);
	/* The same way in with a plain request is served: an empty answer below is no refusal. */
	const char *plain = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	tls_raw_request(&srv, plain, strlen(plain), out, sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "a plain request through s_client: [%s]", out);
	/* 64 KiB of headers against a 16 KiB cap: answered with a 4xx. */
	char *hdr = malloc(70000);
	size_t n = 0;
	n += (size_t)sprintf(hdr + n, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
	for (int i = 0; n < 65536; i++)
		n += (size_t)sprintf(hdr + n, "X-Flood-%d: %s\r\n", i, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	n += (size_t)sprintf(hdr + n, "\r\n");
	tls_raw_request(&srv, hdr, n, out, sizeof(out));
	free(hdr);
	cr_expect(strncmp(out, "HTTP/1.1 4", 10) == 0, "64 KiB of headers were not refused: [%s]", out);
	cr_expect_eq(th_http(&srv, "GET", "/healthz", NULL, NULL, 0, 0, NULL), 200);
}

/* Rate-limit keys: one IPv6 client owns a /64, so it is limited as one; IPv4 as it is. */
#include "srv_limit.h"

static const char *addr_key(const char *peer)
{
	static char key[SRV_ADDR_KEY_MAX];
	srv_limit_addr_key(peer, key);
	return key;
}

Test(limits, ipv6_peers_are_keyed_by_their_64)
{
	cr_expect_str_eq(addr_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
	cr_expect_str_eq(addr_key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
	cr_expect_str_eq(addr_key("2001:0db8:0001:0002::1"), "2001:db8:1:2::/64", "spellings of one /64 agree");
	cr_expect_str_neq(addr_key("2001:db8:1:3::1"), "2001:db8:1:2::/64");
	cr_expect_str_eq(addr_key("::1"), "::/64");
	cr_expect_str_eq(addr_key("::ffff:192.0.2.7"), "192.0.2.7", "IPv4-mapped: the IPv4 address");
	cr_expect_str_eq(addr_key("192.0.2.7"), "192.0.2.7");
	cr_expect_str_eq(addr_key("not an address"), "not an address");
	/* Two addresses of one /64 share a bucket; another /64 has its own. */
	srv_limiter *l = srv_limiter_new(64, 1, 1, 42);
	char a[SRV_ADDR_KEY_MAX], b[SRV_ADDR_KEY_MAX], c[SRV_ADDR_KEY_MAX];
	size_t na = srv_limit_addr_key("2001:db8:1:2::1", a);
	size_t nb = srv_limit_addr_key("2001:db8:1:2::2", b);
	size_t nc = srv_limit_addr_key("2001:db8:1:3::1", c);
	cr_expect_eq(srv_limiter_take(l, a, na, 100), 0);
	cr_expect_gt(srv_limiter_take(l, b, nb, 100), 0, "a new address in the same /64 got a fresh bucket");
	cr_expect_eq(srv_limiter_take(l, c, nc, 100), 0);
	srv_limiter_free(l);
}
