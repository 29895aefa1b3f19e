/* cl_sys: what this machine says about itself, for the volunteer controls (cl_prefs) and the
 * heartbeat's health: CPU time (/proc/stat), load (/proc/loadavg), memory (/proc/meminfo),
 * uptime (/proc/uptime), temperature (/sys/class/thermal) and power
 * (/sys/class/power_supply).
 *
 * Every path is read under $TESSERA_TEST_SYSROOT when it is set, so tests feed fake files
 * without root. The parsers are pure (text in, numbers out); the readers only open files. */
#ifndef CL_SYS_H
#define CL_SYS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ts_err.h"

#define CL_SYS_ROOT_ENV "TESSERA_TEST_SYSROOT"

/* CPU time of all CPUs since boot, in clock ticks (USER_HZ): busy is everything but idle and
 * iowait. */
typedef struct cl_sys_cpu {
	uint64_t busy, total;
} cl_sys_cpu;

/* The "cpu " line of /proc/stat. TS_ERR_BAD_REQUEST when text has none. */
ts_err cl_sys_parse_stat(const char *text, cl_sys_cpu *out);
/* MemTotal and MemAvailable of /proc/meminfo, in bytes. TS_ERR_BAD_REQUEST without both. */
ts_err cl_sys_parse_meminfo(const char *text, uint64_t *total, uint64_t *available);

/* One power supply as /sys/class/power_supply/NAME shows it: type ("Battery", "Mains", ...),
 * status ("Discharging", ...; "" when absent), online (1, 0, or -1 when absent). */
typedef struct cl_sys_supply {
	char type[32], status[32];
	int online;
} cl_sys_supply;

/* On battery: a battery discharges, or the machine has a battery and its mains supplies are all
 * offline. A machine without a battery (a Pi, a server) never is. */
int cl_sys_power_on_battery(const cl_sys_supply *s, size_t n);

/* The share (0..100) of all CPUs that other processes used between two readings of
 * /proc/stat, self_s being the CPU seconds this process used in between; negative when the
 * readings cannot tell (no time passed). */
double cl_sys_other_pct(const cl_sys_cpu *before, const cl_sys_cpu *after, double self_s, long hz);

/* Readers. Each returns TS_ERR_NOT_FOUND when the machine does not have it, TS_ERR_IO or
 * TS_ERR_BAD_REQUEST when its file cannot be read or parsed. */
ts_err cl_sys_cpu_read(cl_sys_cpu *out);
/* The hottest thermal zone, in degrees Celsius. */
ts_err cl_sys_temp(double *celsius);
/* *on_battery as cl_sys_power_on_battery says; 0 where no supply is listed. */
ts_err cl_sys_on_battery(int *on_battery);
/* CPU seconds this process (all its threads), its waited-for children and its live
 * descendants (a program unit's sandbox, whose processes count as ours, not as "other
 * processes") have used. Live descendants are read from the real /proc, not the test root. */
double cl_sys_self_cpu_s(void);
/* The ticks a /proc/PID/stat line says: its parent, and utime + stime + cutime + cstime.
 * TS_ERR_BAD_REQUEST when text is not such a line. */
ts_err cl_sys_parse_pid_stat(const char *text, long *ppid, uint64_t *ticks);
/* Clock ticks per second of /proc/stat. */
long cl_sys_hz(void);

/* The heartbeat's "health": {"load1", "mem_total_bytes", "mem_available_bytes", "uptime_s",
 * "temp_c"}, each only when it could be read (temp_c only where there is a thermal zone).
 * NULL only when out of memory. */
json_t *cl_sys_health(void);

/* A path under the test root: "/proc/stat" becomes "$TESSERA_TEST_SYSROOT/proc/stat". */
void cl_sys_path(const char *path, char *out, size_t outlen);

#endif
