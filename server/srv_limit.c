#include "srv_limit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct bucket {
	uint64_t key; /* 0: empty */
	double tokens;
	double stamp; /* last refill */
};

struct srv_limiter {
	struct bucket *b;
	size_t sets;
	double rate, burst;
	uint64_t seed;
};

/* FNV-1a over the seed and the key, so bucket placement cannot be predicted from outside. */
static uint64_t limit_hash(uint64_t seed, const void *key, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;
	const unsigned char *p = key;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 29;
	return h ? h : 1;
}

srv_limiter *srv_limiter_new(size_t slots, double rate, double burst, uint64_t seed)
{
	srv_limiter *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->sets = slots / WAYS + 1;
	l->b = calloc(l->sets * WAYS, sizeof(*l->b));
	if (!l->b) {
		free(l);
		return NULL;
	}
	l->rate = rate;
	l->burst = burst < 1 ? 1 : burst;
	l->seed = seed;
	return l;
}

void srv_limiter_free(srv_limiter *l)
{
	if (!l)
		return;
	free(l->b);
	free(l);
}

double srv_limiter_take(srv_limiter *l, const void *key, size_t keylen, double now)
{
	if (!l || l->rate <= 0)
		return 0;
	uint64_t h = limit_hash(l->seed, key, keylen);
	struct bucket *set = &l->b[(h % l->sets) * WAYS], *b = NULL, *oldest = &set[0];
	for (int i = 0; i < WAYS && !b; i++) {
		if (set[i].key == h)
			b = &set[i];
		else if (set[i].stamp < oldest->stamp)
			oldest = &set[i];
	}
	if (!b) {
		b = oldest;
		*b = (struct bucket){h, l->burst, now};
	}
	b->tokens += (now - b->stamp) * l->rate;
	if (b->tokens > l->burst)
		b->tokens = l->burst;
	b->stamp = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 0;
	}
	return (1 - b->tokens) / l->rate;
}

size_t srv_limit_addr_key(const char *peer, char out[SRV_ADDR_KEY_MAX])
{
	static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	int n;
	if (inet_pton(AF_INET6, peer, a) != 1) {
		n = snprintf(out, SRV_ADDR_KEY_MAX, "%s", peer);
	} else if (memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0) {
		n = snprintf(out, SRV_ADDR_KEY_MAX, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
	} else {
		memset(a + 8, 0, 8);
		inet_ntop(AF_INET6, a, text, sizeof(text));
		n = snprintf(out, SRV_ADDR_KEY_MAX, "%s/64", text);
	}
	return n < 0 ? 0 : (size_t)n < SRV_ADDR_KEY_MAX ? (size_t)n : SRV_ADDR_KEY_MAX - 1;
}
