/* The volunteer controls' pure parts: --hours, the decision table with its hysteresis, and
 * cl_sys's parsers and readers over a fake $TESSERA_TEST_SYSROOT. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cl_prefs.h"
#include "cl_sys.h"
#include "ts_util.h"

static int hours(const char *s, int *from, int *to)
{
	char why[256];
	return cl_prefs_parse_hours(s, from, to, why, sizeof(why)) == TS_OK ? 0 : -1;
}

Test(hours, parses_windows_including_past_midnight)
{
	int from = -1, to = -1;
	cr_assert_eq(hours("09:00-17:30", &from, &to), 0);
	cr_expect_eq(from, 9 * 60);
	cr_expect_eq(to, 17 * 60 + 30);
	cr_assert_eq(hours("22:00-07:00", &from, &to), 0);
	cr_expect_eq(from, 22 * 60);
	cr_expect_eq(to, 7 * 60);
	cr_assert_eq(hours("18:00-24:00", &from, &to), 0);
	cr_expect_eq(to, 0, "24:00 is midnight");
	cr_assert_eq(hours("00:00-23:59", &from, &to), 0);
}

Test(hours, refuses_what_is_not_a_window)
{
	static const char *const bad[] = {"", "9-17", "9:00-17:00", "09:00", "09:00-", "-17:00",
					  "24:00-07:00", "09:60-10:00", "25:00-07:00", "09:00-24:01",
					  "09:00-17:00x", "09:00--17:00", "0a:00-17:00", "07:00-07:00",
					  "00:00-24:00", " 09:00-17:00", "09:00-17:00-18:00"};
	int from, to;
	char why[256];
	for (size_t i = 0; i < TS_ARRAY_LEN(bad); i++)
		cr_expect_neq(hours(bad[i], &from, &to), 0, "'%s' was taken", bad[i]);
	cr_assert_neq(cl_prefs_parse_hours("7-8", &from, &to, why, sizeof(why)), TS_OK);
	cr_expect(strstr(why, "HH:MM-HH:MM"), "the message says the format: %s", why);
	cr_assert_neq(cl_prefs_parse_hours("07:00-07:00", &from, &to, why, sizeof(why)), TS_OK);
	cr_expect(strstr(why, "empty"), "%s", why);
}

static cl_prefs_reading calm(void)
{
	cl_prefs_reading r = {.other_pct = 10, .has_temp = 1, .temp_c = 45, .on_battery = 0,
			      .minute = 12 * 60};
	return r;
}

/* Reads r with p until the decision settles from held; returns the reason shown. */
static cl_prefs_reason decide(const cl_prefs *p, cl_prefs_reading r, unsigned *held)
{
	*held = cl_prefs_decide(p, &r, *held);
	return cl_prefs_reason_of(*held);
}

Test(decide, each_rule_on_its_own)
{
	cl_prefs none;
	cl_prefs_init(&none);
	unsigned held = 0;
	cl_prefs_reading r = calm();
	cr_expect_eq(decide(&none, r, &held), CL_PREFS_RUN, "no limits, a calm machine");
	r.on_battery = 1;
	cr_expect_eq(decide(&none, r, &held), CL_PREFS_BATTERY, "on battery by default");
	cl_prefs anyway = none;
	anyway.run_on_battery = 1;
	held = 0;
	cr_expect_eq(decide(&anyway, r, &held), CL_PREFS_RUN, "--run-on-battery");

	cl_prefs hot = none;
	hot.max_temp_c = 70;
	r = calm();
	held = 0;
	r.temp_c = 70;
	cr_expect_eq(decide(&hot, r, &held), CL_PREFS_RUN, "at the limit is not above it");
	r.temp_c = 70.5;
	cr_expect_eq(decide(&hot, r, &held), CL_PREFS_HOT);
	r.has_temp = 0;
	cr_expect_eq(decide(&hot, r, &held), CL_PREFS_RUN, "no sensor: no pause");

	cl_prefs busy = none;
	busy.busy_pct = 50;
	r = calm();
	held = 0;
	r.other_pct = 87;
	cr_expect_eq(decide(&busy, r, &held), CL_PREFS_BUSY);
	r.other_pct = -1;
	cr_expect_eq(decide(&busy, r, &held), CL_PREFS_RUN, "unknown usage: no pause");

	cl_prefs night = none;
	cr_assert_eq(cl_prefs_parse_hours("22:00-07:00", &night.hours_from, &night.hours_to, NULL, 0), TS_OK);
	static const struct {
		int minute;
		cl_prefs_reason want;
	} clock[] = {{21 * 60 + 59, CL_PREFS_HOURS}, {22 * 60, CL_PREFS_RUN}, {23 * 60 + 59, CL_PREFS_RUN},
		     {0, CL_PREFS_RUN}, {6 * 60 + 59, CL_PREFS_RUN}, {7 * 60, CL_PREFS_HOURS},
		     {12 * 60, CL_PREFS_HOURS}};
	for (size_t i = 0; i < TS_ARRAY_LEN(clock); i++) {
		r = calm();
		r.minute = clock[i].minute;
		held = 0;
		cr_expect_eq(decide(&night, r, &held), clock[i].want, "22:00-07:00 at %02d:%02d",
			     clock[i].minute / 60, clock[i].minute % 60);
	}
	cl_prefs day = none;
	cr_assert_eq(cl_prefs_parse_hours("09:00-17:30", &day.hours_from, &day.hours_to, NULL, 0), TS_OK);
	r = calm();
	r.minute = 17 * 60 + 30;
	held = 0;
	cr_expect_eq(decide(&day, r, &held), CL_PREFS_HOURS, "the end is exclusive");
	r.minute = 9 * 60;
	cr_expect_eq(decide(&day, r, &held), CL_PREFS_RUN, "the start is inclusive");
}

/* A hot node resumes 5 degrees below the limit, not at it: no flapping around the limit. */
Test(decide, hysteresis_keeps_a_pause_until_a_margin_below)
{
	cl_prefs p;
	cl_prefs_init(&p);
	p.max_temp_c = 80;
	p.busy_pct = 50;
	cl_prefs_reading r = calm();
	unsigned held = 0;
	static const struct {
		double temp;
		cl_prefs_reason want;
	} temps[] = {{79, CL_PREFS_RUN}, {81, CL_PREFS_HOT}, {79, CL_PREFS_HOT}, {75.5, CL_PREFS_HOT},
		     {75, CL_PREFS_RUN}, {79.9, CL_PREFS_RUN}, {80.1, CL_PREFS_HOT}};
	for (size_t i = 0; i < TS_ARRAY_LEN(temps); i++) {
		r.temp_c = temps[i].temp;
		cr_expect_eq(decide(&p, r, &held), temps[i].want, "step %zu at %g C", i, temps[i].temp);
	}
	r = calm();
	held = 0;
	static const struct {
		double pct;
		cl_prefs_reason want;
	} busy[] = {{50, CL_PREFS_RUN}, {60, CL_PREFS_BUSY}, {48, CL_PREFS_BUSY}, {45, CL_PREFS_RUN},
		    {49, CL_PREFS_RUN}};
	for (size_t i = 0; i < TS_ARRAY_LEN(busy); i++) {
		r.other_pct = busy[i].pct;
		cr_expect_eq(decide(&p, r, &held), busy[i].want, "step %zu at %g%%", i, busy[i].pct);
	}
	/* A low limit keeps half of itself as its margin, so its pause can still end. */
	p.busy_pct = 4;
	held = 0;
	r.other_pct = 5;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_BUSY);
	r.other_pct = 2.5;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_BUSY);
	r.other_pct = 2;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_RUN);
}

Test(decide, precedence_names_and_log_text)
{
	cl_prefs p;
	cl_prefs_init(&p);
	p.max_temp_c = 70;
	p.busy_pct = 50;
	cr_assert_eq(cl_prefs_parse_hours("22:00-07:00", &p.hours_from, &p.hours_to, NULL, 0), TS_OK);
	cl_prefs_reading r = {.other_pct = 87, .has_temp = 1, .temp_c = 90, .on_battery = 1, .minute = 600};
	unsigned held = 0;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_BATTERY, "all hold: battery first");
	r.on_battery = 0;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_HOT);
	r.temp_c = 40;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_HOURS);
	r.minute = 23 * 60;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_BUSY);
	r.other_pct = 0;
	cr_expect_eq(decide(&p, r, &held), CL_PREFS_RUN);
	cr_expect_str_eq(cl_prefs_reason_name(CL_PREFS_BUSY), "busy");
	cr_expect_str_eq(cl_prefs_reason_name(CL_PREFS_HOT), "hot");
	cr_expect_str_eq(cl_prefs_reason_name(CL_PREFS_HOURS), "hours");
	cr_expect_str_eq(cl_prefs_reason_name(CL_PREFS_BATTERY), "battery");
	cr_expect_null(cl_prefs_reason_name(CL_PREFS_RUN));
	char text[160];
	r.other_pct = 87;
	cl_prefs_describe(CL_PREFS_BUSY, &p, &r, text, sizeof(text));
	cr_expect_str_eq(text, "busy (other processes 87% > 50%)");
	r.temp_c = 85.04;
	cl_prefs_describe(CL_PREFS_HOT, &p, &r, text, sizeof(text));
	cr_expect(strncmp(text, "hot (CPU 85.0 C > 70 C", 22) == 0, "%s", text);
}

Test(sys, parses_proc_stat_and_meminfo)
{
	cl_sys_cpu c;
	cr_assert_eq(cl_sys_parse_stat("cpu  100 20 30 400 50 6 7 8 0 0\ncpu0 1 2 3 4\n", &c), TS_OK);
	cr_expect_eq(c.total, 621);
	cr_expect_eq(c.busy, 621 - 400 - 50);
	cr_assert_eq(cl_sys_parse_stat("intr 1\ncpu  1 2 3 4\n", &c), TS_OK, "not the first line");
	cr_expect_eq(c.total, 10);
	cr_expect_neq(cl_sys_parse_stat("cpu0 1 2 3 4\n", &c), TS_OK, "no total line");
	cr_expect_neq(cl_sys_parse_stat("cpu  1 2\n", &c), TS_OK);
	uint64_t total, avail;
	cr_assert_eq(cl_sys_parse_meminfo("MemTotal:        3884316 kB\nMemFree:  100 kB\n"
					  "MemAvailable:    2961224 kB\n", &total, &avail), TS_OK);
	cr_expect_eq(total, 3884316ull * 1024);
	cr_expect_eq(avail, 2961224ull * 1024);
	cr_expect_neq(cl_sys_parse_meminfo("MemTotal: 1 kB\n", &total, &avail), TS_OK, "no MemAvailable");
}

Test(sys, other_processes_share_without_our_own_time)
{
	cl_sys_cpu a = {.busy = 1000, .total = 2000}, b = {.busy = 1870, .total = 3000};
	cr_expect_float_eq(cl_sys_other_pct(&a, &b, 0, 100), 87, 1e-9);
	/* 3 s of our own CPU at 100 ticks/s: 300 of the 870 busy ticks were ours. */
	cr_expect_float_eq(cl_sys_other_pct(&a, &b, 3.0, 100), 57, 1e-9);
	cr_expect_float_eq(cl_sys_other_pct(&a, &b, 20.0, 100), 0, 1e-9, "never below 0");
	cr_expect_lt(cl_sys_other_pct(&a, &a, 0, 100), 0, "no time passed: unknown");
}

Test(sys, process_stat_lines_and_our_own_children)
{
	long ppid = 0;
	uint64_t ticks = 0;
	cr_assert_eq(cl_sys_parse_pid_stat("4242 (python3 (mpi) x) S 17 4242 4242 0 -1 4194560 1 2 3 4 "
					   "100 20 7 3 20 0 1 0 5 6 7\n", &ppid, &ticks), TS_OK);
	cr_expect_eq(ppid, 17);
	cr_expect_eq(ticks, 130, "utime + stime + cutime + cstime");
	cr_expect_neq(cl_sys_parse_pid_stat("4242 (x) S 17\n", &ppid, &ticks), TS_OK);
	/* A busy child of ours counts as ours while it runs, before it is reaped: it spins until it
	 * has used 0.5 s of CPU (however loaded the machine), says so through a pipe and waits. */
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	double before = cl_sys_self_cpu_s();
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		struct timespec cpu = {0, 0};
		while (cpu.tv_sec == 0 && cpu.tv_nsec < 500 * 1000 * 1000)
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
		char one = 1;
		if (write(fds[1], &one, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char got = 0;
	cr_assert_eq(read(fds[0], &got, 1), 1);
	double during = cl_sys_self_cpu_s();
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(fds[0]);
	close(fds[1]);
	double after = cl_sys_self_cpu_s();
	cr_expect_geq(during - before, 0.45, "a live child's CPU time was not counted (%g s)", during - before);
	cr_expect_geq(after, during - 0.05, "our CPU time went down when the child was reaped");
}

Test(sys, battery_from_power_supplies)
{
	cl_sys_supply pi[1] = {{"USB", "", -1}};
	cr_expect_eq(cl_sys_power_on_battery(NULL, 0), 0, "no supply at all (a server)");
	cr_expect_eq(cl_sys_power_on_battery(pi, 1), 0);
	cl_sys_supply laptop[2] = {{"Mains", "", 1}, {"Battery", "Charging", -1}};
	cr_expect_eq(cl_sys_power_on_battery(laptop, 2), 0, "plugged in");
	snprintf(laptop[1].status, sizeof(laptop[1].status), "Discharging");
	cr_expect_eq(cl_sys_power_on_battery(laptop, 2), 1, "discharging");
	snprintf(laptop[1].status, sizeof(laptop[1].status), "Unknown");
	laptop[0].online = 0;
	cr_expect_eq(cl_sys_power_on_battery(laptop, 2), 1, "AC offline with a battery");
	cl_sys_supply ups[1] = {{"Mains", "", 0}};
	cr_expect_eq(cl_sys_power_on_battery(ups, 1), 0, "AC offline but no battery: not ours to say");
}

/* The readers over fake files: what the integration tests rely on. */
static char root[64];

static void put(const char *rel, const char *text)
{
	char path[256], dir[256];
	snprintf(path, sizeof(path), "%s%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	cr_assert_eq(ts_mkdirs(dir, 0700), TS_OK, "%s", dir);
	cr_assert_eq(ts_write_file(path, text, strlen(text), 0600), TS_OK, "%s", path);
}

static void root_make(void)
{
	snprintf(root, sizeof(root), "/tmp/tessera-test-sysroot-XXXXXX");
	cr_assert(mkdtemp(root));
	setenv(CL_SYS_ROOT_ENV, root, 1);
}

static void root_remove(void)
{
	char cmd[128];
	unsetenv(CL_SYS_ROOT_ENV);
	if (strncmp(root, "/tmp/tessera-test-sysroot-", 26) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		cr_expect_eq(system(cmd), 0);
	}
}

Test(sys, readers_use_the_test_root, .init = root_make, .fini = root_remove)
{
	double t;
	int bat = -1;
	cl_sys_cpu c;
	cr_expect_eq(cl_sys_temp(&t), TS_ERR_NOT_FOUND, "no thermal zones");
	cr_expect_eq(cl_sys_cpu_read(&c), TS_ERR_NOT_FOUND);
	cr_expect_eq(cl_sys_on_battery(&bat), TS_OK);
	cr_expect_eq(bat, 0, "no power supplies: not on battery");
	put("/proc/stat", "cpu  10 0 10 80 0 0 0 0\n");
	put("/sys/class/thermal/thermal_zone0/temp", "48312\n");
	put("/sys/class/thermal/thermal_zone1/temp", "71000\n");
	put("/sys/class/thermal/thermal_zone2/temp", "-274000\n"); /* a zone that is off */
	put("/sys/class/thermal/cooling_device0/temp", "99000\n");  /* not a zone */
	put("/sys/class/power_supply/AC/type", "Mains\n");
	put("/sys/class/power_supply/AC/online", "0\n");
	put("/sys/class/power_supply/BAT0/type", "Battery\n");
	put("/sys/class/power_supply/BAT0/status", "Discharging\n");
	put("/proc/loadavg", "0.52 0.40 0.33 1/123 4567\n");
	put("/proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 400 kB\n");
	put("/proc/uptime", "12345.67 40000.00\n");
	cr_assert_eq(cl_sys_temp(&t), TS_OK);
	cr_expect_float_eq(t, 71.0, 1e-9, "the hottest zone");
	cr_assert_eq(cl_sys_cpu_read(&c), TS_OK);
	cr_expect_eq(c.total, 100);
	cr_assert_eq(cl_sys_on_battery(&bat), TS_OK);
	cr_expect_eq(bat, 1);
	json_t *h = cl_sys_health();
	cr_assert(h);
	cr_expect_float_eq(json_number_value(json_object_get(h, "load1")), 0.52, 1e-9);
	cr_expect_eq(json_integer_value(json_object_get(h, "mem_total_bytes")), 1000 * 1024);
	cr_expect_eq(json_integer_value(json_object_get(h, "mem_available_bytes")), 400 * 1024);
	cr_expect_eq(json_integer_value(json_object_get(h, "uptime_s")), 12345);
	cr_expect_float_eq(json_number_value(json_object_get(h, "temp_c")), 71.0, 1e-9);
	json_decref(h);
	put("/sys/class/thermal/thermal_zone1/temp", "garbage\n");
	cr_assert_eq(cl_sys_temp(&t), TS_OK);
	cr_expect_float_eq(t, 48.312, 1e-9, "an unreadable zone is skipped");
}
