#include "srv_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

ts_err srv_lock_take(const char *dir, int *fd, char *why, size_t whylen)
{
	char path[4096], pid[32] = "";
	*fd = -1;
	snprintf(path, sizeof(path), "%s/server.lock", dir);
	/* CLOEXEC: a child the server might exec must not keep the lock after the server is gone. */
	int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return TS_ERR_IO;
	}
	/* Made by root (restore under sudo), the file is given to the data dir's owner, whom a
	 * server started with --user runs as. */
	struct stat st;
	if (geteuid() == 0 && stat(dir, &st) == 0 && fchown(lock, st.st_uid, st.st_gid) != 0)
		fprintf(stderr, "%s: cannot give %s to the owner of %s: %s\n", __func__, path, dir, strerror(errno));
	if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;
		ssize_t n = err == EWOULDBLOCK ? pread(lock, pid, sizeof(pid) - 1, 0) : -1;
		close(lock);
		if (err != EWOULDBLOCK) {
			snprintf(why, whylen, "cannot lock %s: %s", path, strerror(err));
			return TS_ERR_IO;
		}
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(why, whylen, "a tessera-server%s%s%s is running on %s (it holds %s)", *pid ? " (pid " : "",
			 pid, *pid ? ")" : "", dir, path);
		return TS_ERR_CONFLICT;
	}
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	/* Without the pid only the message of a refused command is poorer: the lock holds. */
	if (ftruncate(lock, 0) != 0 || pwrite(lock, pid, (size_t)n, 0) != n)
		fprintf(stderr, "%s: cannot write the pid into %s: %s\n", __func__, path, strerror(errno));
	*fd = lock;
	return TS_OK;
}

void srv_lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
