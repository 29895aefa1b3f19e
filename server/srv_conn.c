#include "srv_conn.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FD_SLOTS 65536 /* sockets numbered above this are not tracked for activity */

struct conn {
	struct bufferevent *bev;
	double created;
	unsigned char addr[16];
	int addrlen; /* 0 until the socket is known */
	int shut;
};

struct srv_conns {
	srv_conn_limits lim;
	struct conn *v;
	size_t n, cap;
	double *last_done; /* by socket: when a request last completed on it */
};

srv_conns *srv_conns_new(const srv_conn_limits *limits)
{
	srv_conns *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->lim = *limits;
	c->last_done = calloc(FD_SLOTS, sizeof(double));
	if (!c->last_done) {
		free(c);
		return NULL;
	}
	return c;
}

static int conn_freed(struct conn *k)
{
	bufferevent_data_cb rd = NULL, wr = NULL;
	bufferevent_event_cb ev = NULL;
	void *arg = NULL;
	bufferevent_getcb(k->bev, &rd, &wr, &ev, &arg);
	return rd == NULL && ev == NULL; /* bufferevent_free clears them */
}

static void conn_shut(struct conn *k)
{
	evutil_socket_t fd = bufferevent_getfd(k->bev);
	if (fd >= 0 && !k->shut)
		shutdown(fd, SHUT_RDWR);
	k->shut = 1;
}

void srv_conns_free(srv_conns *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		conn_shut(&c->v[i]);
		bufferevent_decref(c->v[i].bev);
	}
	free(c->v);
	free(c->last_done);
	free(c);
}

void srv_conns_add(srv_conns *c, struct bufferevent *bev, double now)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct conn *grown = realloc(c->v, cap * sizeof(*grown));
		if (!grown)
			return; /* untracked: still served, just not policed */
		c->v = grown;
		c->cap = cap;
	}
	bufferevent_incref(bev);
	c->v[c->n++] = (struct conn){.bev = bev, .created = now};
}

void srv_conns_done(srv_conns *c, evutil_socket_t fd, double now)
{
	if (fd >= 0 && fd < FD_SLOTS)
		c->last_done[fd] = now;
}

/* The peer address as bytes, once the socket is set. */
static void conn_addr(struct conn *k)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd = bufferevent_getfd(k->bev);
	if (k->addrlen || fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		memcpy(k->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		k->addrlen = 4;
	} else if (ss.ss_family == AF_INET6) {
		memcpy(k->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		k->addrlen = 16;
	}
}

/* Counts connections per address in a small open-addressing table rebuilt each sweep. */
struct addr_count {
	unsigned char addr[16];
	int len;
	size_t n;
};

static size_t *addr_slot(struct addr_count *t, size_t cap, const struct conn *k)
{
	uint64_t h = 1469598103934665603ULL;
	for (int i = 0; i < k->addrlen; i++)
		h = (h ^ k->addr[i]) * 1099511628211ULL;
	for (size_t i = h % cap;; i = (i + 1) % cap) {
		if (t[i].len == 0) {
			memcpy(t[i].addr, k->addr, 16);
			t[i].len = k->addrlen;
			return &t[i].n;
		}
		if (t[i].len == k->addrlen && memcmp(t[i].addr, k->addr, (size_t)k->addrlen) == 0)
			return &t[i].n;
	}
}

int srv_conns_sweep(srv_conns *c, double now)
{
	size_t cap = c->n * 2 + 1, alive = 0, w = 0;
	struct addr_count *counts = calloc(cap, sizeof(*counts));
	int shut = 0;
	/* In creation order, so the newest connections are the ones over a cap. */
	for (size_t i = 0; i < c->n; i++) {
		struct conn k = c->v[i];
		if (conn_freed(&k)) {
			bufferevent_decref(k.bev);
			continue;
		}
		conn_addr(&k);
		evutil_socket_t fd = bufferevent_getfd(k.bev);
		double last = fd >= 0 && fd < FD_SLOTS && c->last_done[fd] > k.created ? c->last_done[fd] : 0;
		double deadline = last ? last + c->lim.idle_s : k.created + c->lim.first_request_s;
		int over = ++alive > c->lim.max_total;
		if (counts && k.addrlen && !k.shut)
			over |= ++*addr_slot(counts, cap, &k) > c->lim.max_per_addr;
		if (!k.shut && (over || now > deadline)) {
			conn_shut(&k);
			shut++;
		}
		c->v[w++] = k;
	}
	c->n = w;
	free(counts);
	return shut;
}

size_t srv_conns_count(const srv_conns *c)
{
	return c->n;
}
