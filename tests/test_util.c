/* ts_util's atomic file write: it writes and replaces, syncs the file before the rename and the
 * directory after it, and on every failure leaves neither a temp file nor an open descriptor.
 * fsync and rename are interposed here (the executable's definitions win over libc's), so the
 * test sees their order and can make fsync fail. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ts_util.h"

/* What the interposed calls saw, in order: 'f' fsync of a file, 'd' fsync of a directory,
 * 'r' rename. */
static char calls[64];
static size_t n_calls;
static int fail_fsync; /* 'f' or 'd': fsync of that kind fails with EIO */
static struct stat synced_dir;

static void note(char c)
{
	if (n_calls + 1 < sizeof(calls))
		calls[n_calls++] = c;
	calls[n_calls] = '\0';
}

int fsync(int fd)
{
	struct stat st;
	char kind = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) ? 'd' : 'f';
	note(kind);
	if (kind == 'd')
		synced_dir = st;
	if (fail_fsync == kind) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

int rename(const char *from, const char *to)
{
	note('r');
	return renameat(AT_FDCWD, from, AT_FDCWD, to);
}

static char dir[64];

static void dir_make(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tessera-util-XXXXXX");
	cr_assert(mkdtemp(dir));
	n_calls = 0;
	fail_fsync = 0;
}

/* Entries of a directory, . and .. aside; names go to list (space-separated) when not NULL. */
static int entries(const char *path, char *list, size_t cap)
{
	int n = 0;
	size_t len = 0;
	DIR *d = opendir(path);
	struct dirent *e;
	cr_assert(d, "opendir %s", path);
	if (list && cap)
		list[0] = '\0';
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		n++;
		if (list && len < cap)
			len += (size_t)snprintf(list + len, cap - len, "%s ", e->d_name);
	}
	closedir(d);
	return n;
}

static void dir_remove(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

static char *slurp(const char *path)
{
	char *text = NULL;
	cr_assert_eq(ts_read_file(path, 1 << 16, &text, NULL), TS_OK, "read %s", path);
	return text;
}

Test(write_file, writes_and_replaces_with_the_mode, .init = dir_make, .fini = dir_remove)
{
	char path[128], names[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/state.json", dir);
	cr_assert_eq(ts_write_file(path, "one", 3, 0600), TS_OK);
	char *text = slurp(path);
	cr_expect_str_eq(text, "one");
	free(text);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	/* A replacement, with a wider mode the umask would narrow. */
	mode_t old = umask(077);
	cr_assert_eq(ts_write_file(path, "second", 6, 0644), TS_OK);
	umask(old);
	text = slurp(path);
	cr_expect_str_eq(text, "second");
	free(text);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0644, "mode %o", st.st_mode & 0777);
	cr_expect_eq(entries(dir, names, sizeof(names)), 1, "left behind: %s", names);
	/* Empty contents are a file too. */
	cr_assert_eq(ts_write_file(path, "", 0, 0600), TS_OK);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_size, 0);
}

Test(write_file, syncs_the_file_renames_then_syncs_the_directory, .init = dir_make,
     .fini = dir_remove)
{
	char path[128];
	struct stat parent;
	snprintf(path, sizeof(path), "%s/node.json", dir);
	cr_assert_eq(ts_write_file(path, "{}", 2, 0600), TS_OK);
	cr_expect_str_eq(calls, "frd", "fsync and rename calls: \"%s\"", calls);
	cr_assert_eq(stat(dir, &parent), 0);
	cr_expect(synced_dir.st_ino == parent.st_ino && synced_dir.st_dev == parent.st_dev,
		  "the directory synced is not the file's");
}

/* Open descriptors of this process. */
static int fds_open(void)
{
	return entries("/proc/self/fd", NULL, 0);
}

Test(write_file, failures_leave_no_temp_file_and_no_descriptor, .init = dir_make,
     .fini = dir_remove)
{
	char target[128], blocker[128], under_file[160], missing[160], path[128], names[256];
	snprintf(target, sizeof(target), "%s/a-directory", dir);
	snprintf(blocker, sizeof(blocker), "%s/a-file", dir);
	snprintf(under_file, sizeof(under_file), "%s/x.json", blocker);
	snprintf(missing, sizeof(missing), "%s/no-such-dir/x.json", dir);
	snprintf(path, sizeof(path), "%s/x.json", dir);
	cr_assert_eq(mkdir(target, 0700), 0);
	cr_assert_eq(ts_write_file(blocker, "keep", 4, 0600), TS_OK);
	int before = fds_open();
	for (int i = 0; i < 50; i++) {
		/* The target is a directory: the rename fails. */
		cr_expect_eq(ts_write_file(target, "x", 1, 0600), TS_ERR_IO);
		/* The directory cannot hold files: a file in its place, or none at all. */
		cr_expect_eq(ts_write_file(under_file, "x", 1, 0600), TS_ERR_IO);
		cr_expect_eq(ts_write_file(missing, "x", 1, 0600), TS_ERR_IO);
		/* The file's fsync fails: nothing replaced. */
		fail_fsync = 'f';
		cr_expect_eq(ts_write_file(blocker, "new", 3, 0600), TS_ERR_IO);
		fail_fsync = 0;
	}
	cr_expect_eq(fds_open(), before, "%d descriptors open before, %d after 200 failed writes",
		     before, fds_open());
	cr_expect_eq(entries(dir, names, sizeof(names)), 2, "left behind: %s", names);
	struct stat st;
	cr_expect(stat(target, &st) == 0 && S_ISDIR(st.st_mode), "the directory was replaced");
	char *text = slurp(blocker);
	cr_expect_str_eq(text, "keep", "a write whose fsync failed replaced the file");
	free(text);
	/* The directory's fsync fails after the rename: the new contents are in place but not
	 * known to be durable, which is an error; the descriptor is closed all the same. */
	before = fds_open();
	fail_fsync = 'd';
	cr_expect_eq(ts_write_file(path, "late", 4, 0600), TS_ERR_IO);
	fail_fsync = 0;
	cr_expect_eq(fds_open(), before, "the directory's descriptor leaked");
	text = slurp(path);
	cr_expect_str_eq(text, "late");
	free(text);
	cr_expect_eq(entries(dir, names, sizeof(names)), 3, "left behind: %s", names);
}

Test(write_file, a_path_too_long_is_refused_before_anything_is_made, .init = dir_make,
     .fini = dir_remove)
{
	char *path = malloc(8192);
	int n = snprintf(path, 8192, "%s/", dir);
	memset(path + n, 'a', 8192 - (size_t)n - 1);
	path[8191] = '\0';
	int before = fds_open();
	cr_expect_eq(ts_write_file(path, "x", 1, 0600), TS_ERR_BAD_REQUEST);
	cr_expect_eq(fds_open(), before);
	cr_expect_eq(entries(dir, NULL, 0), 0);
	free(path);
}
