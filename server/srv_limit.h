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

/* The key an address is rate-limited by: an IPv6 address by its /64 ("2001:db8:1:2::/64"),
 * since one subscriber gets a whole /64 and could otherwise take a new address per request;
 * an IPv4-mapped IPv6 address as its IPv4 ("192.0.2.1"); anything else as it is (truncated).
 * Writes the NUL-terminated key into out and returns its length. */
#define SRV_ADDR_KEY_MAX 64
size_t srv_limit_addr_key(const char *peer, char out[SRV_ADDR_KEY_MAX]);

#endif
