/* srv_conn: the server's connections: caps in total and per address, and deadlines, so slow or
 * idle clients (slow-loris) cannot hold connections forever.
 *
 * libevent 2.1's evhttp has no hooks for this, so each TLS bufferevent evhttp asks us for is
 * tracked with an extra reference, which keeps only its memory valid: evhttp still closes the
 * socket itself when it is done with a connection (and sets the bufferevent's fd to -1), and
 * clears its callbacks, which is how the next sweep knows to drop our reference. A connection
 * over a cap or past its deadline is shut down (shutdown(2)); evhttp then sees EOF and frees it
 * itself. */
#ifndef SRV_CONN_H
#define SRV_CONN_H

#include <stddef.h>

#include <event2/bufferevent.h>

typedef struct srv_conns srv_conns;

typedef struct srv_conn_limits {
	size_t max_total;       /* connections at once */
	size_t max_per_addr;    /* from one address */
	double first_request_s; /* from accept to the first complete request (TLS handshake included) */
	double idle_s;          /* after a request, until the next one completes */
} srv_conn_limits;

srv_conns *srv_conns_new(const srv_conn_limits *limits);
/* Shuts every tracked connection and drops the references (at server stop). */
void srv_conns_free(srv_conns *c);

/* Tracks a new connection's bufferevent (takes a reference). */
void srv_conns_add(srv_conns *c, struct bufferevent *bev, double now);
/* A request completed on the connection with this socket. */
void srv_conns_done(srv_conns *c, evutil_socket_t fd, double now);
/* Forgets freed connections and shuts down slow and excess ones; returns how many it shut. */
int srv_conns_sweep(srv_conns *c, double now);
/* Connections tracked now (some may be closing). */
size_t srv_conns_count(const srv_conns *c);

#endif
