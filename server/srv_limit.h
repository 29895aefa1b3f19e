/* srv_limit: token-bucket rate limits keyed by a string (an address, a token id). Pure: no I/O.
 *
 * A fixed table of buckets, 4-way set associative by a keyed hash: memory is bounded however
 * many keys an attacker invents; when a set is full its least recently used bucket is reused. */
#ifndef SRV_LIMIT_H
#define SRV_LIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv_limiter srv_limiter;

/* rate: tokens per second; burst: bucket size. slots is rounded up to a multiple of 4.
 * rate <= 0 makes a limiter that allows everything. */
srv_limiter *srv_limiter_new(size_t slots, double rate, double burst, uint64_t seed);
void srv_limiter_free(srv_limiter *l);

/* Takes one token for key at time now (seconds, monotonic). Returns 0 when allowed, else the
 * seconds until a token is free (for Retry-After). */
double srv_limiter_take(srv_limiter *l, const void *key, size_t keylen, double now);

#endif
