/* cl_sys: small bounded reads of /proc and /sys, under $TESSERA_TEST_SYSROOT when set. */
#include "cl_sys.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ts_util.h"

#define SYS_PATH_MAX 512
#define SYS_READ_MAX 4096 /* the lines we want are near the start of every file we read */
#define SYS_ZONES_MAX 64  /* thermal zones and power supplies looked at, at most */

void cl_sys_path(const char *path, char *out, size_t outlen)
{
	const char *root = getenv(CL_SYS_ROOT_ENV);
	snprintf(out, outlen, "%s%s", root ? root : "", path);
}

/* The first cap-1 bytes of path (under the test root), NUL-terminated. */
static ts_err sys_read(const char *path, char *buf, size_t cap)
{
	char full[SYS_PATH_MAX];
	cl_sys_path(path, full, sizeof(full));
	FILE *f = fopen(full, "r");
	if (!f)
		return errno == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO;
	size_t n = fread(buf, 1, cap - 1, f);
	int bad = ferror(f);
	fclose(f);
	buf[n] = '\0';
	return bad ? TS_ERR_IO : TS_OK;
}

/* One word of a sysfs file, newline cut: "Battery", "1". */
static ts_err sys_word(const char *path, char *buf, size_t cap)
{
	ts_err e = sys_read(path, buf, cap);
	if (!e)
		buf[strcspn(buf, "\r\n")] = '\0';
	return e;
}

ts_err cl_sys_parse_stat(const char *text, cl_sys_cpu *out)
{
	/* user nice system idle iowait irq softirq steal; guest time is already in user. */
	uint64_t v[8] = {0};
	const char *p = strncmp(text, "cpu ", 4) == 0 ? text : strstr(text, "\ncpu ");
	if (!p)
		return TS_ERR_BAD_REQUEST;
	p += *p == '\n' ? 5 : 4;
	int n = sscanf(p, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			  " %" SCNu64 " %" SCNu64,
		       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	if (n < 4)
		return TS_ERR_BAD_REQUEST;
	uint64_t total = 0;
	for (int i = 0; i < n; i++)
		total += v[i];
	out->total = total;
	out->busy = total - v[3] - v[4];
	return TS_OK;
}

/* The kB value of a "Key:   123 kB" line of /proc/meminfo. */
static int meminfo_value(const char *text, const char *key, uint64_t *bytes)
{
	size_t klen = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		uint64_t kb;
		if (strncmp(p, key, klen) == 0 && p[klen] == ':' &&
		    sscanf(p + klen + 1, "%" SCNu64, &kb) == 1) {
			*bytes = kb * 1024;
			return 0;
		}
	}
	return -1;
}

ts_err cl_sys_parse_meminfo(const char *text, uint64_t *total, uint64_t *available)
{
	if (meminfo_value(text, "MemTotal", total) || meminfo_value(text, "MemAvailable", available))
		return TS_ERR_BAD_REQUEST;
	return TS_OK;
}

int cl_sys_power_on_battery(const cl_sys_supply *s, size_t n)
{
	int battery = 0, mains = 0, mains_online = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s[i].type, "Battery") == 0) {
			battery = 1;
			if (strcmp(s[i].status, "Discharging") == 0)
				return 1;
		} else if (strcmp(s[i].type, "Mains") == 0 && s[i].online >= 0) {
			mains = 1;
			mains_online |= s[i].online > 0;
		}
	}
	/* A battery that says "Unknown" or "Not charging" while the AC adapter is unplugged. */
	return battery && mains && !mains_online;
}

double cl_sys_other_pct(const cl_sys_cpu *before, const cl_sys_cpu *after, double self_s, long hz)
{
	if (after->total <= before->total || after->busy < before->busy || hz <= 0)
		return -1;
	double total = (double)(after->total - before->total);
	double other = (double)(after->busy - before->busy) - self_s * (double)hz;
	if (other < 0)
		other = 0; /* ticks are coarse: our own time can come out above the busy ticks */
	double pct = 100.0 * other / total;
	return pct > 100 ? 100 : pct;
}

ts_err cl_sys_cpu_read(cl_sys_cpu *out)
{
	char buf[SYS_READ_MAX];
	ts_err e = sys_read("/proc/stat", buf, sizeof(buf));
	return e ? e : cl_sys_parse_stat(buf, out);
}

/* Calls fn for each entry of dir (under the test root) whose name starts with prefix, at most
 * SYS_ZONES_MAX of them; TS_ERR_NOT_FOUND when the directory is missing. */
static ts_err sys_each(const char *dir, const char *prefix,
		       void (*fn)(const char *path, void *arg), void *arg)
{
	char full[SYS_PATH_MAX];
	cl_sys_path(dir, full, sizeof(full));
	DIR *d = opendir(full);
	if (!d)
		return errno == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO;
	struct dirent *de;
	int seen = 0;
	while ((de = readdir(d)) && seen < SYS_ZONES_MAX) {
		char path[SYS_PATH_MAX];
		if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fn(path, arg);
		seen++;
	}
	closedir(d);
	return TS_OK;
}

struct temp_acc {
	double max;
	int found;
};

static void temp_zone(const char *zone, void *arg)
{
	struct temp_acc *acc = arg;
	char path[SYS_PATH_MAX], buf[64], *end;
	snprintf(path, sizeof(path), "%s/temp", zone);
	if (sys_word(path, buf, sizeof(buf)))
		return;
	errno = 0;
	long milli = strtol(buf, &end, 10);
	/* A zone that reads an error or nonsense (some report -274000 when off) is skipped. */
	if (errno || end == buf || milli < -60000 || milli > 200000)
		return;
	double c = (double)milli / 1000.0;
	if (!acc->found || c > acc->max)
		acc->max = c;
	acc->found = 1;
}

ts_err cl_sys_temp(double *celsius)
{
	/* The hottest zone: on a Pi there is one (cpu-thermal), elsewhere the CPU package is
	 * usually the hottest, and pausing for any hot zone errs on the machine's side. */
	struct temp_acc acc = {0, 0};
	ts_err e = sys_each("/sys/class/thermal", "thermal_zone", temp_zone, &acc);
	if (e)
		return e;
	if (!acc.found)
		return TS_ERR_NOT_FOUND;
	*celsius = acc.max;
	return TS_OK;
}

struct supply_acc {
	cl_sys_supply s[SYS_ZONES_MAX];
	size_t n;
};

static void supply_entry(const char *dir, void *arg)
{
	struct supply_acc *acc = arg;
	char path[SYS_PATH_MAX], online[16];
	cl_sys_supply *s = &acc->s[acc->n];
	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "%s/type", dir);
	if (acc->n >= SYS_ZONES_MAX || sys_word(path, s->type, sizeof(s->type)))
		return;
	snprintf(path, sizeof(path), "%s/status", dir);
	if (sys_word(path, s->status, sizeof(s->status)))
		s->status[0] = '\0';
	snprintf(path, sizeof(path), "%s/online", dir);
	s->online = sys_word(path, online, sizeof(online)) ? -1 : atoi(online) != 0;
	acc->n++;
}

ts_err cl_sys_on_battery(int *on_battery)
{
	struct supply_acc acc;
	acc.n = 0;
	ts_err e = sys_each("/sys/class/power_supply", "", supply_entry, &acc);
	*on_battery = e ? 0 : cl_sys_power_on_battery(acc.s, acc.n);
	return e == TS_ERR_NOT_FOUND ? TS_OK : e;
}

ts_err cl_sys_parse_pid_stat(const char *text, long *ppid, uint64_t *ticks)
{
	/* "pid (comm) state ppid ..." where comm may hold spaces and parentheses: after the last
	 * ')' come field 3 (state) on; utime, stime, cutime, cstime are fields 14 to 17. */
	const char *p = strrchr(text, ')');
	char state;
	long parent;
	uint64_t skip, ut, st;
	int64_t cut, cst;
	if (!p || sscanf(p + 1, " %c %ld %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			       " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			       " %" SCNd64 " %" SCNd64,
			 &state, &parent, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip,
			 &ut, &st, &cut, &cst) != 15)
		return TS_ERR_BAD_REQUEST;
	*ppid = parent;
	*ticks = ut + st + (uint64_t)(cut > 0 ? cut : 0) + (uint64_t)(cst > 0 ? cst : 0);
	return TS_OK;
}

struct proc_row {
	long pid, ppid;
	uint64_t ticks;
	int ours;
};

static int proc_row_cmp(const void *a, const void *b)
{
	long x = ((const struct proc_row *)a)->pid, y = ((const struct proc_row *)b)->pid;
	return (x > y) - (x < y);
}

/* Ticks of the live descendants of this process, from one pass over /proc. */
static uint64_t sys_descendant_ticks(void)
{
	DIR *d = opendir("/proc");
	struct proc_row *rows = NULL;
	size_t n = 0, cap = 0;
	uint64_t sum = 0;
	struct dirent *de;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[64], buf[1024], *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* gone since readdir */
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		struct proc_row r = {pid, 0, 0, pid == (long)getpid()};
		if (cl_sys_parse_pid_stat(buf, &r.ppid, &r.ticks))
			continue;
		if (n == cap) {
			size_t grown = cap ? cap * 2 : 256;
			struct proc_row *more = realloc(rows, grown * sizeof(*rows));
			if (!more)
				break;
			rows = more;
			cap = grown;
		}
		rows[n++] = r;
	}
	closedir(d);
	/* Mark children of marked processes until nothing changes: one pass per generation (a
	 * sandbox is a few deep), each parent found by binary search. */
	if (rows)
		qsort(rows, n, sizeof(*rows), proc_row_cmp);
	for (int changed = 1; changed;) {
		changed = 0;
		for (size_t i = 0; i < n; i++) {
			struct proc_row key = {.pid = rows[i].ppid}, *parent;
			if (rows[i].ours)
				continue;
			parent = bsearch(&key, rows, n, sizeof(*rows), proc_row_cmp);
			if (parent && parent->ours)
				rows[i].ours = changed = 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (rows[i].ours && rows[i].pid != (long)getpid())
			sum += rows[i].ticks;
	free(rows);
	return sum;
}

double cl_sys_self_cpu_s(void)
{
	struct rusage self, kids;
	double s = 0;
	if (getrusage(RUSAGE_SELF, &self) == 0)
		s += (double)self.ru_utime.tv_sec + (double)self.ru_utime.tv_usec / 1e6 +
		     (double)self.ru_stime.tv_sec + (double)self.ru_stime.tv_usec / 1e6;
	if (getrusage(RUSAGE_CHILDREN, &kids) == 0)
		s += (double)kids.ru_utime.tv_sec + (double)kids.ru_utime.tv_usec / 1e6 +
		     (double)kids.ru_stime.tv_sec + (double)kids.ru_stime.tv_usec / 1e6;
	/* A child's time moves to its parent's cutime when it is reaped, and to our
	 * RUSAGE_CHILDREN when we reap it: the sum only grows. */
	return s + (double)sys_descendant_ticks() / (double)cl_sys_hz();
}

long cl_sys_hz(void)
{
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? hz : 100;
}

/* Sets key to a number, ignoring a failed set: health is best effort. */
static void health_set(json_t *h, const char *key, json_t *v)
{
	if (v)
		json_object_set_new(h, key, v);
}

json_t *cl_sys_health(void)
{
	char buf[SYS_READ_MAX];
	json_t *h = json_object();
	double load, up, temp;
	uint64_t total, avail;
	if (!h)
		return NULL;
	if (!sys_read("/proc/loadavg", buf, sizeof(buf)) && sscanf(buf, "%lf", &load) == 1 &&
	    isfinite(load) && load >= 0)
		health_set(h, "load1", json_real(load));
	if (!sys_read("/proc/meminfo", buf, sizeof(buf)) &&
	    !cl_sys_parse_meminfo(buf, &total, &avail) && avail <= total) {
		health_set(h, "mem_total_bytes", json_integer((json_int_t)total));
		health_set(h, "mem_available_bytes", json_integer((json_int_t)avail));
	}
	if (!sys_read("/proc/uptime", buf, sizeof(buf)) && sscanf(buf, "%lf", &up) == 1 &&
	    isfinite(up) && up >= 0)
		health_set(h, "uptime_s", json_integer((json_int_t)up));
	if (!cl_sys_temp(&temp))
		health_set(h, "temp_c", json_real(round(temp * 10) / 10));
	return h;
}
