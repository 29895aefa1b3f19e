/* prime_count: the number of primes p with from <= p < to (DESIGN.md).
 *
 * Segmented sieve of Eratosthenes on the mod-30 wheel: byte k holds the eight numbers 30k + w,
 * w in {1, 7, 11, 13, 17, 19, 23, 29}, one bit each, so a 32 KiB block covers ~10^6 numbers.
 * Multiples of 7..19 come from a precomputed pattern copied into each block; the other primes up
 * to sqrt(to) cross off their multiples p*n (n coprime to 30), whose eight residues repeat every
 * p bytes: one unrolled loop per p mod 30 crosses a whole wheel turn at a time.
 * Primes below 32 Ki sieve an L1-sized block at a time; those below 256 Ki, which hit a block a
 * few times at most, the whole L2-sized segment at once; larger ones (towards 10^14 the most)
 * wait in the bucket of the segment of their next multiple, so a segment touches only the ones
 * that hit it. Counted with popcount, the range's edges masked. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"

#define PC_MAX_TO 100000000000000ULL /* 1e14: base primes to 1e7, about 10 MiB of state a thread */
#define PC_BLOCK (32u * 1024)        /* bytes sieved while they sit in L1 */
#define PC_SEGMENT (8u * PC_BLOCK)   /* bytes sieved per pass of the large primes */
#define PC_SMALL_LIMIT PC_BLOCK      /* primes below it sieve block by block */
#define PC_LARGE_LIMIT PC_SEGMENT    /* primes from it on wait in buckets (see pc_sieve) */
/* 7*11*13*17*19: the pattern of the pre-sieved primes repeats every that many bytes. */
#define PC_PATTERN_PERIOD 323323u

static const uint8_t pc_wheel[8] = {1, 7, 11, 13, 17, 19, 23, 29};

/* Bit of the wheel residue x (x coprime to 30). */
#define PC_BIT(x)                                                                                  \
	((x) == 1    ? 0                                                                           \
	 : (x) == 7  ? 1                                                                           \
	 : (x) == 11 ? 2                                                                           \
	 : (x) == 13 ? 3                                                                           \
	 : (x) == 17 ? 4                                                                           \
	 : (x) == 19 ? 5                                                                           \
	 : (x) == 23 ? 6                                                                           \
		     : 7)

/* For p = 30q + r: multiple p*(30j + w) is in byte p*j + q*w + r*w/30, bit PC_BIT(r*w % 30). */
#define PC_ADJ(r, w) ((r) * (w) / 30)
#define PC_MASK(r, w) ((uint8_t) ~(1u << PC_BIT((r) * (w) % 30)))

/* A sieving prime p = 30q + r. off: byte of its next multiple, from the current segment's
 * start; wi = 8 * PC_BIT(r) + i, where that multiple is p*(30j + pc_wheel[i]). */
typedef struct pc_prime {
	uint64_t off;
	uint32_t q;
	uint32_t wi;
} pc_prime;

/* Per (wi): the mask of the multiple, and the byte step to the next one minus its q part. */
static uint8_t pc_mask[64];
static uint8_t pc_step_adj[64];
static uint8_t pc_step_q[8];
/* The pre-sieve pattern, PC_PATTERN_PERIOD bytes plus a block so one memcpy fills a block. */
static uint8_t pc_pattern[PC_PATTERN_PERIOD + PC_BLOCK];
static uint64_t (*pc_popcount_fn)(const uint8_t *b, size_t n);
static pthread_once_t pc_once = PTHREAD_ONCE_INIT;

static uint64_t pc_popcount_sw(const uint8_t *b, size_t n);
#if defined(__x86_64__)
static uint64_t pc_popcount_hw(const uint8_t *b, size_t n);
#endif

static void pc_init(void)
{
	pc_popcount_fn = pc_popcount_sw;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("popcnt"))
		pc_popcount_fn = pc_popcount_hw;
#endif
	for (int rc = 0; rc < 8; rc++) {
		unsigned r = pc_wheel[rc];
		for (int i = 0; i < 8; i++) {
			unsigned w = pc_wheel[i], wn = i < 7 ? pc_wheel[i + 1] : 31;
			pc_mask[rc * 8 + i] = (uint8_t) ~(1u << PC_BIT(r * w % 30));
			pc_step_adj[rc * 8 + i] = (uint8_t)(r * wn / 30 - r * w / 30);
		}
	}
	for (int i = 0; i < 8; i++)
		pc_step_q[i] = (uint8_t)((i < 7 ? pc_wheel[i + 1] : 31) - pc_wheel[i]);
	memset(pc_pattern, 0xff, sizeof(pc_pattern));
	static const unsigned pre[] = {7, 11, 13, 17, 19};
	for (size_t k = 0; k < sizeof(pre) / sizeof(pre[0]); k++) {
		unsigned p = pre[k];
		/* Multiples p*n for n coprime to 30, from n = 1, until the pattern's end. */
		for (uint64_t j = 0;; j++) {
			int past = 0;
			for (int i = 0; i < 8; i++) {
				uint64_t m = (uint64_t)p * (30 * j + pc_wheel[i]);
				if (m / 30 >= sizeof(pc_pattern)) {
					past = 1;
					break;
				}
				pc_pattern[m / 30] &= (uint8_t) ~(1u << PC_BIT(m % 30));
			}
			if (past)
				break;
		}
	}
}

/* Crossing one multiple at wheel index i (residue w, next residue wn) of a prime p = 30q + r,
 * unless it is past the end. FT marks the fall through from the previous index. */
#define PC_STEP(r, i, w, wn, FT)                                                                   \
	FT case PC_BIT(r) * 8 + i:                                                                 \
		if (off >= end) {                                                                  \
			wi = PC_BIT(r) * 8 + i;                                                    \
			goto save;                                                                 \
		}                                                                                  \
		seg[off] &= PC_MASK(r, w);                                                         \
		off += ((wn) - (w)) * q + PC_ADJ(r, wn) - PC_ADJ(r, w);

#define PC_FT __attribute__((fallthrough));

/* The eight single steps of one p % 30 class, then whole wheel turns (eight multiples in p
 * bytes) while a turn fits, then single steps again up to the end. */
#define PC_CLASS(r)                                                                                \
	for (;;) {                                                                                 \
		PC_STEP(r, 0, 1, 7, )                                                              \
		PC_STEP(r, 1, 7, 11, PC_FT)                                                        \
		PC_STEP(r, 2, 11, 13, PC_FT)                                                       \
		PC_STEP(r, 3, 13, 17, PC_FT)                                                       \
		PC_STEP(r, 4, 17, 19, PC_FT)                                                       \
		PC_STEP(r, 5, 19, 23, PC_FT)                                                       \
		PC_STEP(r, 6, 23, 29, PC_FT)                                                       \
		PC_STEP(r, 7, 29, 31, PC_FT)                                                       \
		{                                                                                  \
			const uint64_t p = 30 * q + (r), last = 28 * q + PC_ADJ(r, 29);            \
			const uint64_t o1 = 6 * q + PC_ADJ(r, 7), o2 = 10 * q + PC_ADJ(r, 11);     \
			const uint64_t o3 = 12 * q + PC_ADJ(r, 13), o4 = 16 * q + PC_ADJ(r, 17);   \
			const uint64_t o5 = 18 * q + PC_ADJ(r, 19), o6 = 22 * q + PC_ADJ(r, 23);   \
			for (; off + last < end; off += p) {                                       \
				uint8_t *b = seg + off;                                            \
				b[0] &= PC_MASK(r, 1);                                             \
				b[o1] &= PC_MASK(r, 7);                                            \
				b[o2] &= PC_MASK(r, 11);                                           \
				b[o3] &= PC_MASK(r, 13);                                           \
				b[o4] &= PC_MASK(r, 17);                                           \
				b[o5] &= PC_MASK(r, 19);                                           \
				b[o6] &= PC_MASK(r, 23);                                           \
				b[last] &= PC_MASK(r, 29);                                         \
			}                                                                          \
		}                                                                                  \
	}

/* Crosses the prime's multiples in seg[..end), then moves its offset back by rebase bytes
 * (the segment's length once the segment is done, else 0). */
static inline void pc_cross(uint8_t *seg, uint64_t end, pc_prime *pp, uint64_t rebase)
{
	uint64_t off = pp->off;
	const uint64_t q = pp->q;
	unsigned wi = pp->wi;
	switch (wi) {
		PC_CLASS(1)
		PC_CLASS(7)
		PC_CLASS(11)
		PC_CLASS(13)
		PC_CLASS(17)
		PC_CLASS(19)
		PC_CLASS(23)
		PC_CLASS(29)
	}
save:
	pp->off = off - rebase;
	pp->wi = wi;
}

__attribute__((always_inline)) static inline uint64_t pc_popcount(const uint8_t *b, size_t n)
{
	uint64_t c = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		c += (uint64_t)__builtin_popcountll(w);
	}
	for (; i < n; i++)
		c += (uint64_t)__builtin_popcount(b[i]);
	return c;
}

#if defined(__x86_64__)
/* x86-64's baseline has no popcnt instruction; nearly every CPU has it. */
__attribute__((target("popcnt"))) static uint64_t pc_popcount_hw(const uint8_t *b, size_t n)
{
	return pc_popcount(b, n);
}
#endif

static uint64_t pc_popcount_sw(const uint8_t *b, size_t n)
{
	return pc_popcount(b, n);
}

static uint64_t pc_isqrt(uint64_t n)
{
	uint64_t r = 0;
	for (uint64_t bit = 1ULL << 62; bit; bit >>= 2) {
		if (n >= r + bit) {
			n -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
	}
	return r;
}

/* The primes p with 23 <= p <= limit as sieving state for the segment starting at byte b0;
 * NULL when out of memory. */
static pc_prime *pc_base_primes(uint64_t limit, uint64_t b0, size_t *n)
{
	pc_prime *pp = NULL;
	uint8_t *composite = calloc(limit / 2 + 1, 1); /* odd numbers only: index k is 2k + 1 */
	size_t cap = 0, count = 0;
	if (!composite)
		return NULL;
	for (uint64_t k = 1; (2 * k + 1) * (2 * k + 1) <= limit; k++)
		if (!composite[k])
			for (uint64_t m = (2 * k + 1) * (2 * k + 1); m <= limit; m += 2 * (2 * k + 1))
				composite[m / 2] = 1;
	for (uint64_t k = 11; 2 * k + 1 <= limit; k++)
		cap += !composite[k];
	pp = malloc((cap ? cap : 1) * sizeof(*pp));
	if (!pp)
		goto out;
	for (uint64_t k = 11; 2 * k + 1 <= limit; k++) {
		if (composite[k])
			continue;
		uint64_t p = 2 * k + 1;
		/* First multiple p*n >= max(p^2, 30*b0) with n coprime to 30. */
		uint64_t n0 = (30 * b0 + p - 1) / p;
		if (n0 < p)
			n0 = p;
		uint64_t j = n0 / 30, t = n0 % 30;
		int i = 0;
		while (pc_wheel[i] < t)
			i++;
		uint64_t q = p / 30, r = p % 30;
		uint64_t byte = p * j + q * pc_wheel[i] + r * pc_wheel[i] / 30;
		pp[count++] = (pc_prime){byte - b0, (uint32_t)q, (uint32_t)(PC_BIT(r) * 8 + i)};
	}
out:
	free(composite);
	*n = count;
	return pp;
}

/* A pending multiple of a large prime: its byte within its segment, and q << 6 | wi. */
typedef struct pc_hit {
	uint32_t off;
	uint32_t qwi;
} pc_hit;

typedef struct pc_bucket {
	pc_hit *hits;
	size_t n, cap;
} pc_bucket;

/* The sieve of one range. Base primes are in increasing order: [0, nsmall) sieve per block,
 * [nsmall, nmedium) per segment, [nmedium, np) are large: each sits in the bucket of the
 * segment of its next multiple (a ring of nb buckets, nb a power of two), so a segment only
 * touches the large primes that hit it. Large primes from `pending` on have a first multiple
 * still too far ahead for the ring; their off counts from the range's first byte. */
typedef struct pc_sieve {
	pc_prime *pp;
	size_t np, nsmall, nmedium, pending;
	pc_bucket *bk;
	size_t nb;
	uint8_t *seg;
} pc_sieve;

static int pc_push(pc_sieve *sv, uint64_t rel, uint32_t qwi)
{
	pc_bucket *b = &sv->bk[(rel / PC_SEGMENT) & (sv->nb - 1)];
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 1024;
		pc_hit *h = realloc(b->hits, cap * sizeof(*h));
		if (!h)
			return -1;
		b->hits = h;
		b->cap = cap;
	}
	b->hits[b->n++] = (pc_hit){(uint32_t)(rel % PC_SEGMENT), qwi};
	return 0;
}

/* Crosses the large primes' multiples in segment k (seg[0, len)), one multiple per bucket entry,
 * and files each prime's next multiple, possibly into this same bucket. */
static int pc_sieve_large(pc_sieve *sv, uint64_t k, uint64_t len)
{
	/* Ring slots k .. k + nb - 1 are in use; pending primes join once their slot is. */
	while (sv->pending < sv->np && sv->pp[sv->pending].off / PC_SEGMENT < k + sv->nb) {
		const pc_prime *pp = &sv->pp[sv->pending++];
		if (pc_push(sv, pp->off, pp->q << 6 | pp->wi))
			return -1;
	}
	pc_bucket *b = &sv->bk[k & (sv->nb - 1)];
	for (size_t e = 0; e < b->n; e++) {
		const pc_hit h = b->hits[e]; /* a copy: pc_push may move b->hits */
		if (h.off >= len)
			continue; /* past the end of the range's short last segment */
		const unsigned wi = h.qwi & 63;
		const uint64_t q = h.qwi >> 6;
		sv->seg[h.off] &= pc_mask[wi];
		uint64_t next = k * PC_SEGMENT + h.off + q * pc_step_q[wi & 7] + pc_step_adj[wi];
		if (pc_push(sv, next, (uint32_t)(q << 6 | (wi & ~7u) | ((wi + 1) & 7u))))
			return -1;
	}
	b->n = 0;
	return 0;
}

static void pc_sieve_free(pc_sieve *sv)
{
	for (size_t i = 0; sv->bk && i < sv->nb; i++)
		free(sv->bk[i].hits);
	free(sv->bk);
	free(sv->pp);
	free(sv->seg);
}

/* Primes in [lo, hi); hi <= PC_MAX_TO. */
static ts_err pc_count(uint64_t lo, uint64_t hi, uint64_t *out, const volatile int *cancel)
{
	static const uint8_t below23[] = {2, 3, 5, 7, 11, 13, 17, 19};
	uint64_t count = 0;
	pc_sieve sv = {0};
	ts_err result = TS_OK;

	*out = 0;
	if (lo >= hi)
		return TS_OK;
	pthread_once(&pc_once, pc_init);
	/* 2..19 are not in the sieve (2, 3, 5) or crossed off by the pattern (7..19). */
	for (size_t i = 0; i < sizeof(below23); i++)
		count += below23[i] >= lo && below23[i] < hi;
	const uint64_t b0 = lo / 30, b1 = (hi - 1) / 30 + 1; /* bytes [b0, b1) hold [lo, hi) */
	sv.pp = pc_base_primes(pc_isqrt(hi - 1), b0, &sv.np);
	sv.seg = malloc(PC_SEGMENT);
	if (!sv.pp || !sv.seg)
		goto nomem;
	while (sv.nsmall < sv.np && 30 * (uint64_t)sv.pp[sv.nsmall].q < PC_SMALL_LIMIT)
		sv.nsmall++;
	sv.nmedium = sv.nsmall;
	while (sv.nmedium < sv.np && 30 * (uint64_t)sv.pp[sv.nmedium].q < PC_LARGE_LIMIT)
		sv.nmedium++;
	sv.pending = sv.nmedium;
	if (sv.nmedium < sv.np) {
		/* Consecutive multiples are at most 6q + 6 bytes apart; a power of two masks. */
		const uint64_t need = (6 * (uint64_t)sv.pp[sv.np - 1].q + 6) / PC_SEGMENT + 2;
		for (sv.nb = 2; sv.nb < need; sv.nb *= 2)
			;
		if (!(sv.bk = calloc(sv.nb, sizeof(*sv.bk))))
			goto nomem;
	}

	for (uint64_t s = b0; s < b1; s += PC_SEGMENT) {
		if (cancel && *cancel) {
			result = TS_ERR_UNAVAILABLE;
			goto out;
		}
		uint8_t *seg = sv.seg;
		const uint64_t len = b1 - s < PC_SEGMENT ? b1 - s : PC_SEGMENT;
		for (uint64_t blk = 0; blk < len; blk += PC_BLOCK) {
			const uint64_t end = len - blk < PC_BLOCK ? len : blk + PC_BLOCK;
			memcpy(seg + blk, pc_pattern + (s + blk) % PC_PATTERN_PERIOD, end - blk);
			const uint64_t rebase = end == len ? len : 0;
			for (size_t i = 0; i < sv.nsmall; i++)
				pc_cross(seg, end, &sv.pp[i], rebase);
		}
		for (size_t i = sv.nsmall; i < sv.nmedium; i++)
			pc_cross(seg, len, &sv.pp[i], len);
		if (sv.bk && pc_sieve_large(&sv, (s - b0) / PC_SEGMENT, len))
			goto nomem;
		if (s == 0)
			seg[0] &= (uint8_t)~1u; /* 1 is not prime */
		/* Drop the numbers of the edge bytes outside [lo, hi). */
		for (int b = 0; b < 8; b++) {
			if (s == b0 && 30 * b0 + pc_wheel[b] < lo)
				seg[0] &= (uint8_t) ~(1u << b);
			if (s + len == b1 && 30 * (b1 - 1) + pc_wheel[b] >= hi)
				seg[len - 1] &= (uint8_t) ~(1u << b);
		}
		count += pc_popcount_fn(seg, len);
	}
	*out = count;
	goto out;
nomem:
	result = TS_ERR_NOMEM;
out:
	pc_sieve_free(&sv);
	return result;
}

ts_err kern_prime_count_range(uint64_t lo, uint64_t hi, uint64_t *count)
{
	if (hi > PC_MAX_TO)
		return TS_ERR_BAD_REQUEST;
	return pc_count(lo, hi, count, NULL);
}

static const kern_param pc_params[] = {
	{"from", "integer", 1, 0, 1e14, NULL, NULL, "the first number counted"},
	{"to", "integer", 1, 1, 1e14, NULL, NULL, "the end of the range (not counted)"},
	{NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static ts_err pc_parse(const json_t *params, kern_args *args, char *why, size_t whylen)
{
	return kern_parse_range(params, "prime_count", 0, PC_MAX_TO, args, why, whylen);
}

static ts_err pc_compute(const kern_args *args, uint64_t start, uint64_t count, kern_partial *out,
			 const volatile int *cancel)
{
	uint64_t primes = 0;
	ts_err result = pc_count(args->from + start, args->from + start + count, &primes, cancel);
	*out = (kern_partial){{primes, 0}};
	return result;
}

static json_t *pc_partial_to_json(const kern_partial *p)
{
	return kern_count_to_json("count", p);
}

static ts_err pc_partial_from_json(const json_t *j, kern_partial *p)
{
	return kern_count_from_json("count", j, p);
}

/* Numbers n in [0, x) with n mod 6 = 1 or 5. */
static uint64_t pc_coprime6_below(uint64_t x)
{
	return 2 * (x / 6) + (x % 6 >= 2);
}

static int pc_plausible(const kern_args *args, uint64_t start, uint64_t count,
			const kern_partial *p)
{
	const uint64_t lo = args->from + start, hi = lo + count;
	/* At most: the numbers coprime to 6 (1 aside), and 2 and 3 where the range has them. */
	uint64_t most = pc_coprime6_below(hi) - pc_coprime6_below(lo);
	most -= lo <= 1 && 1 < hi;
	most += (lo <= 2 && 2 < hi) + (lo <= 3 && 3 < hi);
	/* At least one where the range holds 2, or (lo, 2 lo) for lo >= 2: Bertrand's postulate. */
	uint64_t least = lo >= 2 ? 2 * lo <= hi : hi > 2;
	return p->v[0] <= most && p->v[0] >= least;
}

static json_t *pc_finalize(const kern_args *args, const kern_partial *total)
{
	return json_pack("{s:I,s:I,s:I}", "from", (json_int_t)args->from, "to",
			 (json_int_t)(args->from + args->space), "count", (json_int_t)total->v[0]);
}

const kern kern_prime_count = {
	.name = "prime_count",
	.alias = "primes",
	.title = "Prime counting",
	.params = pc_params,
	.example = "{\"from\": 0, \"to\": 1000000000}",
	.result_help = "count: the primes p with from <= p < to",
	.parse = pc_parse,
	.zero = kern_count_zero,
	.compute = pc_compute,
	.combine = kern_count_combine,
	.partial_to_json = pc_partial_to_json,
	.partial_from_json = pc_partial_from_json,
	.partial_plausible = pc_plausible,
	.finalize = pc_finalize,
	.default_unit = 2000000000ULL,
	.ns_per_index = 0.4,
};
