/* srv_lock: the data dir's lock, DIR/server.lock, flock'ed by `run` for as long as it serves and
 * by `restore` while it swaps the store, so a store is never replaced under a live server. The
 * kernel drops the lock when its holder exits, however it exits (kill -9 included): a stale
 * file means nothing. */
#ifndef SRV_LOCK_H
#define SRV_LOCK_H

#include <stddef.h>

#include "ts_err.h"

/* Takes the lock of dir without waiting and writes our pid into the file (for the message of
 * whoever is refused next). *fd gets the descriptor that holds it: keep it open, close it (or
 * exit) to release. TS_ERR_CONFLICT when another process holds it (why names its pid),
 * TS_ERR_IO when the file cannot be opened. */
ts_err srv_lock_take(const char *dir, int *fd, char *why, size_t whylen);
void srv_lock_release(int fd);

#endif
