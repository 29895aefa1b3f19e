/* srv_kdf: a small pool of threads for password hashing, off the event loop.
 *
 * scrypt costs about 0.1 s of CPU and 32 MiB; on the loop one login would stall every other
 * request for that long. A task's work runs on a worker and must touch only its own memory (no
 * store, no evhttp, no libevent: this libevent is not built thread-safe). When it is done the
 * worker hands it back through a pipe, and its done callback runs on the loop.
 *
 * Not thread-safe itself: srv_kdf_* are called from the loop's thread only. */
#ifndef SRV_KDF_H
#define SRV_KDF_H

#include <stddef.h>

struct event_base;

typedef struct srv_kdf srv_kdf;

/* work runs on a worker; done runs on the loop afterwards, once, with the same arg. */
typedef void (*srv_kdf_work)(void *arg);
typedef void (*srv_kdf_done)(void *arg);

/* Starts workers threads; at most max_tasks tasks are queued, running or waiting to be handed
 * back at once. NULL on failure (nothing is left running). */
srv_kdf *srv_kdf_new(struct event_base *base, int workers, int max_tasks);

/* Tasks queued, running or not yet handed back. */
int srv_kdf_busy(const srv_kdf *k);
/* Whether a task may be submitted now. */
int srv_kdf_has_room(const srv_kdf *k);

/* Queues a task. Returns 0, or -1 when max_tasks are in flight (then nothing is queued and
 * done will not run). */
int srv_kdf_submit(srv_kdf *k, srv_kdf_work work, srv_kdf_done done, void *arg);

/* Lets the workers finish every queued task, joins them, then runs the done callbacks of all
 * tasks on the calling thread, so every task started is finished. NULL is fine. */
void srv_kdf_free(srv_kdf *k);

#endif
