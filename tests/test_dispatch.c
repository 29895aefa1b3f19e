/* Dispatch without waste (issue 12), against a real server: a long-poll fetch is answered the
 * moment work appears, or empty at its time; the previous fetch shape is unchanged; a node's
 * held units (prefetch) are not resent; a report can carry the next fetch; an idle node races a
 * straggling unit. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kern.h"
#include "th_harness.h"

static th_server srv;

static void setup(void)
{
	th_server_start(&srv);
}

static void teardown(void)
{
	th_server_stop(&srv);
}


static json_t *fetch_body(const char *token, const char *body)
{
	json_t *reply = NULL;
	long status = th_http(&srv, "POST", "/api/v1/work/fetch", token, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 200, "fetch %s: HTTP %ld", body, status);
	return reply;
}

static size_t n_units(const json_t *reply)
{
	return json_array_size(json_object_get(reply, "units"));
}

static int64_t unit_id(const json_t *reply, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(json_object_get(reply, "units"), i), "id"));
}

/* A fetch that must hand out exactly one unit: its id. */
static int64_t fetch_one(const char *token, const char *body)
{
	json_t *reply = fetch_body(token, body);
	cr_assert_eq(n_units(reply), 1, "fetch %s: %zu units, not 1", body, n_units(reply));
	int64_t id = unit_id(reply, 0);
	json_decref(reply);
	return id;
}

/* An idle node's long-poll is answered with the units of a job submitted while it waits. */
Test(dispatch, long_poll_answers_when_work_appears, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "idle", a, sizeof(a));
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		close(fds[0]);
		json_t *reply = fetch_body(a, "{\"max_units\":4,\"wait_s\":30}");
		char out = (char)('0' + (n_units(reply) > 9 ? 9 : n_units(reply)));
		(void)!write(fds[1], &out, 1);
		_exit(0);
	}
	close(fds[1]);
	th_sleep(1.0); /* the fetch is waiting on the server by now (no work exists) */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas"), 0);
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":4000},\"units\":4}");
	char got = 0;
	cr_assert_eq(read(fds[0], &got, 1), 1, "the waiting fetch never answered");
	int st;
	waitpid(child, &st, 0);
	/* Units in its reply: it was answered after the submit, not at its start or its end. */
	cr_expect_eq(got, '4', "the waiting fetch got %c units", got);
	close(fds[0]);
}

/* A long-poll with no work comes back empty at its time and says to ask again at once. */
Test(dispatch, long_poll_times_out_empty, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "idle", a, sizeof(a));
	json_t *reply = fetch_body(a, "{\"wait_s\":1}");
	cr_expect_eq(n_units(reply), 0);
	cr_expect_eq(json_integer_value(json_object_get(reply, "retry_after_s")), 0);
	json_decref(reply);
	/* Out of range or of the wrong type: refused, as any bad field. */
	const char *bad[] = {"{\"wait_s\":-1}", "{\"wait_s\":61}", "{\"wait_s\":\"soon\"}", "{\"holding\":[0]}",
			     "{\"holding\":[\"x\"]}", "{\"holding\":7}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/fetch", a, bad[i], strlen(bad[i]), 0, NULL), 400,
			     "%s", bad[i]);
}

/* The previous release's fetch (no wait_s, no holding) is answered at once, as before. */
Test(dispatch, previous_fetch_shape_unchanged, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "old-client", a, sizeof(a));
	json_t *reply = fetch_body(a, "{\"max_units\":1}");
	cr_expect_eq(n_units(reply), 0);
	cr_expect_eq(json_integer_value(json_object_get(reply, "retry_after_s")), 2);
	json_decref(reply);
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":4000},\"units\":4}");
	reply = fetch_body(a, "{\"max_units\":2}");
	cr_expect_eq(n_units(reply), 2);
	int64_t first = unit_id(reply, 0);
	json_decref(reply);
	/* A fetch still means "I hold nothing": the live leases come back first. */
	reply = fetch_body(a, "{\"max_units\":1}");
	cr_expect_eq(unit_id(reply, 0), first);
	json_decref(reply);
}

/* Prefetch: units the node says it holds are not sent again; its other leases are. */
Test(dispatch, held_units_are_not_resent, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], body[200];
	th_enroll_node(&srv, "prefetcher", a, sizeof(a));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":8000},\"units\":8}");
	json_t *reply = fetch_body(a, "{\"max_units\":2}");
	cr_assert_eq(n_units(reply), 2);
	int64_t u0 = unit_id(reply, 0), u1 = unit_id(reply, 1);
	json_decref(reply);
	snprintf(body, sizeof(body), "{\"max_units\":2,\"holding\":[%lld]}", (long long)u0);
	reply = fetch_body(a, body);
	cr_assert_eq(n_units(reply), 2);
	cr_expect_eq(unit_id(reply, 0), u1, "its other lease was not resent first");
	cr_expect_neq(unit_id(reply, 1), u0, "a held unit was sent again");
	json_decref(reply);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas"), 3);
}

static json_t *report_fetch(const char *token, int64_t unit, uint64_t hits, const char *fetch, long want)
{
	char body[400];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"hits\":%llu},\"wall_s\":0.01}],"
		 "\"fetch\":%s}", (long long)unit, (unsigned long long)hits, fetch);
	long status = th_http(&srv, "POST", "/api/v1/work/report", token, body, strlen(body), 0, &reply);
	cr_assert_eq(status, want, "report %s: HTTP %ld", body, status);
	return reply;
}

/* Report and fetch in one round trip: the reply accepts the result and carries the next unit;
 * a node that works that way does the job with one request per unit. A bad "fetch" refuses
 * the whole request and changes nothing. */
Test(dispatch, report_carries_the_next_fetch, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	const uint64_t per = 1000;
	th_enroll_node(&srv, "one-trip", a, sizeof(a));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":4000,\"seed\":9},\"units\":4}");
	json_t *reply = fetch_body(a, "{\"max_units\":1}");
	cr_assert_eq(n_units(reply), 1);
	int64_t unit = unit_id(reply, 0);
	uint64_t start = (uint64_t)json_integer_value(json_object_get(json_array_get(json_object_get(reply, "units"), 0), "start"));
	json_decref(reply);
	const char *bad[] = {"{\"wait_s\":5}", "{\"max_units\":0}", "{\"holding\":[\"x\"]}", "7", "{\"color\":1}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *err = report_fetch(a, unit, kern_pi_hits_scalar(9, start, per), bad[i], 400);
		const char *msg = json_string_value(json_object_get(json_object_get(err, "error"), "message"));
		cr_expect(msg && strstr(msg, "fetch"), "the error for fetch %s does not name it: %s", bad[i], msg);
		json_decref(err);
	}
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas WHERE state = 2"), 0, "a refused report changed the store");
	uint64_t total = 0;
	for (int k = 0; k < 4; k++) {
		uint64_t hits = kern_pi_hits_scalar(9, start, per);
		total += hits;
		reply = report_fetch(a, unit, hits, "{\"max_units\":1}", 200);
		cr_expect_eq(json_array_size(json_object_get(reply, "accepted")), 1, "unit %lld not accepted", (long long)unit);
		json_t *units = json_object_get(reply, "units");
		cr_assert(json_is_array(units), "a report with fetch has no units array");
		cr_expect_eq(json_array_size(units), k < 3 ? 1u : 0u, "report %d: %zu units", k, json_array_size(units));
		if (k < 3) {
			cr_expect_neq(unit_id(reply, 0), unit, "the reported unit came back");
			unit = unit_id(reply, 0);
			start = (uint64_t)json_integer_value(json_object_get(json_array_get(units, 0), "start"));
		}
		json_decref(reply);
	}
	json_t *j = th_wait_job(&srv, job, 10);
	cr_assert(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), (int64_t)total);
	cr_expect_eq(total, kern_pi_hits_scalar(9, 0, 4000));
	json_decref(j);
	/* Without "fetch" the reply is the previous release's: no units key. */
	reply = th_report(&srv, a, unit, 1);
	cr_expect_null(json_object_get(reply, "units"));
	json_decref(reply);
}

/* The end of a job: an idle node gets a copy of a unit still in flight on another volunteer's
 * node; the first result settles it and the slow one's is late and harmless. */

Test(dispatch, idle_node_races_a_straggler, .init = setup, .fini = teardown, .timeout = 60)
{
	char slow[160], fast[160];
	/* 10^6 samples: 1000 s on the slow node, 1 ms on the fast one. */
	th_enroll_rated(&srv, "slow", 1e3, slow, sizeof(slow));
	th_enroll_rated(&srv, "fast", 1e9, fast, sizeof(fast));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000,\"seed\":4},\"units\":1}");
	int64_t unit = fetch_one(slow, "{\"max_units\":1}");
	json_t *reply = fetch_body(fast, "{\"max_units\":4}");
	cr_assert_eq(n_units(reply), 1, "the idle node got no copy of the straggler");
	cr_expect_eq(unit_id(reply, 0), unit);
	json_decref(reply);
	uint64_t hits = kern_pi_hits_scalar(4, 0, 1000000);
	json_t *r = th_report(&srv, fast, unit, hits);
	cr_expect_eq(json_array_size(json_object_get(r, "accepted")), 1);
	json_decref(r);
	json_t *j = th_wait_job(&srv, job, 10);
	cr_assert(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), (int64_t)hits);
	json_decref(j);
	r = th_report(&srv, slow, unit, hits);
	cr_expect_eq(json_array_size(json_object_get(r, "rejected")), 1, "the late copy was counted");
	json_decref(r);
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM jobs"), 1);
	/* One copy at most: a third idle node gets nothing. */
	char third[160];
	th_enroll_rated(&srv, "third", 1e9, third, sizeof(third));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000},\"units\":1}");
	json_decref(fetch_body(slow, "{\"max_units\":1}"));
	json_decref(fetch_body(fast, "{\"max_units\":1}"));
	reply = fetch_body(third, "{\"max_units\":1}");
	cr_expect_eq(n_units(reply), 0, "a third copy of a straggler");
	json_decref(reply);
}

/* A node that would not finish first gets no copy, and nodes that never measured themselves
 * race nobody. */
Test(dispatch, only_a_faster_node_races, .init = setup, .fini = teardown, .timeout = 60)
{
	char slow[160], fast[160], plain[160];
	th_enroll_rated(&srv, "slow", 1e3, slow, sizeof(slow));
	th_enroll_rated(&srv, "fast", 1e9, fast, sizeof(fast));
	th_enroll_node(&srv, "unmeasured", plain, sizeof(plain));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000},\"units\":1}");
	json_t *reply = fetch_body(fast, "{\"max_units\":1}");
	cr_assert_eq(n_units(reply), 1);
	json_decref(reply);
	reply = fetch_body(slow, "{\"max_units\":1}");
	cr_expect_eq(n_units(reply), 0, "the slow node raced the fast one");
	json_decref(reply);
	reply = fetch_body(plain, "{\"max_units\":1}");
	cr_expect_eq(n_units(reply), 0, "an unmeasured node raced");
	json_decref(reply);
}

/* A holder late past its expected time (paused, busy, throttled: slower than its benchmark)
 * loses the race to any idle measured node, even one slower by the rates; one copy at most. */
Test(dispatch, a_late_holder_is_raced, .init = setup, .fini = teardown, .timeout = 60)
{
	char holder[160], idle[160], third[160];
	th_enroll_rated(&srv, "holder", 1e9, holder, sizeof(holder));
	th_enroll_rated(&srv, "idle", 1e6, idle, sizeof(idle));
	th_enroll_rated(&srv, "third", 1e6, third, sizeof(third));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000,\"seed\":6},\"units\":1}");
	int64_t unit = fetch_one(holder, "{\"max_units\":1}");
	json_t *reply = fetch_body(idle, "{\"max_units\":1}");
	cr_expect_eq(n_units(reply), 0, "a slower node raced a holder on time");
	json_decref(reply);
	/* 1 ms of work by its rate, leased 10 s ago: late. */
	th_db_exec(&srv, "UPDATE replicas SET issued_at = issued_at - 10");
	reply = fetch_body(idle, "{\"max_units\":1}");
	cr_assert_eq(n_units(reply), 1, "nobody raced a late holder");
	cr_expect_eq(unit_id(reply, 0), unit);
	json_decref(reply);
	reply = fetch_body(third, "{\"max_units\":1}");
	cr_expect_eq(n_units(reply), 0, "a third copy of a late unit");
	json_decref(reply);
	uint64_t hits = kern_pi_hits_scalar(6, 0, 1000000);
	json_decref(th_report(&srv, idle, unit, hits));
	json_t *j = th_wait_job(&srv, job, 10);
	cr_assert(j);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), (int64_t)hits);
	json_decref(j);
}

struct text {
	char buf[65536];
	size_t n;
};

static size_t on_text(char *p, size_t size, size_t n, void *arg)
{
	struct text *t = arg;
	size_t len = size * n, room = sizeof(t->buf) - 1 - t->n;
	memcpy(t->buf + t->n, p, len < room ? len : room);
	t->n += len < room ? len : room;
	t->buf[t->n] = '\0';
	return len;
}

/* The long-polls waiting on the server now (the /metrics gauge), -1 if it cannot be read. */
static int64_t fetches_waiting(void)
{
	static struct text t;
	char url[256], auth[256];
	t.n = 0;
	t.buf[0] = '\0';
	snprintf(url, sizeof(url), "%s/metrics", srv.url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", srv.admin_token);
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, srv.pin);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_text);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	const char *at = rc == CURLE_OK ? strstr(t.buf, "\ntessera_fetches_waiting ") : NULL;
	return at ? strtoll(at + 25, NULL, 10) : -1;
}

/* A node that goes away while its long-poll waits is handed nothing: the next job's unit goes
 * to a node that is there. */
Test(dispatch, gone_node_gets_no_work, .init = setup, .fini = teardown, .timeout = 60)
{
	char gone[160], here[160];
	th_enroll_node(&srv, "gone", gone, sizeof(gone));
	th_enroll_node(&srv, "here", here, sizeof(here));
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		json_decref(fetch_body(gone, "{\"wait_s\":30}"));
		_exit(0);
	}
	for (int i = 0; i < 200 && fetches_waiting() != 1; i++)
		th_sleep(0.05);
	cr_assert_eq(fetches_waiting(), 1, "the fetch never waited");
	kill(child, SIGKILL);
	int st;
	waitpid(child, &st, 0);
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":1}");
	json_t *reply = fetch_body(here, "{\"max_units\":1}");
	cr_expect_eq(n_units(reply), 1, "the unit went to the node that had gone");
	json_decref(reply);
	cr_expect_eq(fetches_waiting(), 0);
}
