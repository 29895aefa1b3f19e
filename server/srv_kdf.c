#include "srv_kdf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#define KDF_WORKERS_MAX 64

struct task {
	srv_kdf_work work;
	srv_kdf_done done;
	void *arg;
};

/* A ring of tasks; the pool's cap bounds both rings, so neither can overflow. */
struct ring {
	struct task *t;
	int head, n, cap;
};

struct srv_kdf {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ring todo, finished; /* under mu */
	int stop;                   /* under mu */
	int in_flight;              /* the loop's count: submitted and not yet handed back */
	int max_tasks;
	pthread_t threads[KDF_WORKERS_MAX];
	int n_threads;
	int pipe_rd, pipe_wr; /* a worker writes a byte per finished task; the loop reads them */
	struct event *ev;
};

static void ring_push(struct ring *r, struct task t)
{
	r->t[(r->head + r->n) % r->cap] = t;
	r->n++;
}

static struct task ring_pop(struct ring *r)
{
	struct task t = r->t[r->head];
	r->head = (r->head + 1) % r->cap;
	r->n--;
	return t;
}

static void *kdf_worker(void *arg)
{
	srv_kdf *k = arg;
	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (!k->todo.n && !k->stop)
			pthread_cond_wait(&k->cv, &k->mu);
		if (!k->todo.n)
			break; /* stopping, and nothing is left to do */
		struct task t = ring_pop(&k->todo);
		pthread_mutex_unlock(&k->mu);
		t.work(t.arg);
		pthread_mutex_lock(&k->mu);
		ring_push(&k->finished, t);
		/* A full pipe already wakes the loop, which then takes every finished task. */
		ssize_t w;
		do
			w = write(k->pipe_wr, "", 1);
		while (w < 0 && errno == EINTR);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* Runs the done callbacks of the finished tasks (the loop's thread). */
static void kdf_hand_back(srv_kdf *k)
{
	for (;;) {
		pthread_mutex_lock(&k->mu);
		int any = k->finished.n > 0;
		struct task t = any ? ring_pop(&k->finished) : (struct task){0};
		pthread_mutex_unlock(&k->mu);
		if (!any)
			break;
		k->in_flight--;
		t.done(t.arg);
	}
}

static void on_finished(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	kdf_hand_back(arg);
}

static int set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : 0;
}

static void kdf_stop_threads(srv_kdf *k)
{
	pthread_mutex_lock(&k->mu);
	k->stop = 1;
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
	for (int i = 0; i < k->n_threads; i++)
		pthread_join(k->threads[i], NULL);
	k->n_threads = 0;
}

void srv_kdf_free(srv_kdf *k)
{
	if (!k)
		return;
	kdf_stop_threads(k);
	kdf_hand_back(k);
	if (k->ev)
		event_free(k->ev);
	if (k->pipe_rd >= 0)
		close(k->pipe_rd);
	if (k->pipe_wr >= 0)
		close(k->pipe_wr);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
	free(k->todo.t);
	free(k->finished.t);
	free(k);
}

srv_kdf *srv_kdf_new(struct event_base *base, int workers, int max_tasks)
{
	int fds[2];
	if (workers < 1 || workers > KDF_WORKERS_MAX || max_tasks < 1)
		return NULL;
	srv_kdf *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->pipe_rd = k->pipe_wr = -1;
	k->max_tasks = max_tasks;
	k->todo = (struct ring){calloc((size_t)max_tasks, sizeof(struct task)), 0, 0, max_tasks};
	k->finished = (struct ring){calloc((size_t)max_tasks, sizeof(struct task)), 0, 0, max_tasks};
	if (!k->todo.t || !k->finished.t || pipe(fds) != 0)
		goto fail;
	k->pipe_rd = fds[0];
	k->pipe_wr = fds[1];
	if (set_nonblock_cloexec(k->pipe_rd) || set_nonblock_cloexec(k->pipe_wr))
		goto fail;
	k->ev = event_new(base, k->pipe_rd, EV_READ | EV_PERSIST, on_finished, k);
	if (!k->ev || event_add(k->ev, NULL))
		goto fail;
	for (int i = 0; i < workers; i++) {
		if (pthread_create(&k->threads[i], NULL, kdf_worker, k) != 0) {
			fprintf(stderr, "%s: cannot start a worker thread\n", __func__);
			goto fail;
		}
		k->n_threads++;
	}
	return k;
fail:
	srv_kdf_free(k);
	return NULL;
}

int srv_kdf_busy(const srv_kdf *k)
{
	return k->in_flight;
}

int srv_kdf_has_room(const srv_kdf *k)
{
	return k->in_flight < k->max_tasks;
}

int srv_kdf_submit(srv_kdf *k, srv_kdf_work work, srv_kdf_done done, void *arg)
{
	if (!srv_kdf_has_room(k))
		return -1;
	k->in_flight++;
	pthread_mutex_lock(&k->mu);
	ring_push(&k->todo, (struct task){work, done, arg});
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return 0;
}
