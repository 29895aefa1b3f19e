/* montecarlo_pi hit counting, one function per CPU path, and the runtime choice among them.
 *
 * Every path computes exactly the integers of DESIGN.md (no floating point), so all of them give
 * the scalar path's hits on any range; tests/test_kern_pi.c checks every path this CPU runs.
 * The vector loop is one template (kern_pi_vec.h); a path only maps its lane operations. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"

#define PI_GOLDEN 0x9e3779b97f4a7c15ULL
#define PI_MIX1 0xbf58476d1ce4e5b9ULL
#define PI_MIX2 0x94d049bb133111ebULL
#define PI_KEY_ADD 0x632be59bd9b4e019ULL

#if defined(__x86_64__)
#define PI_X86 1
#include <immintrin.h>
#endif

#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_PCS_VFP))
#define PI_NEON 1
#if defined(__arm__) && !defined(__ARM_NEON)
/* armhf baselines (ARMv6/ARMv7 with VFP) lack NEON: build this path for it, check at run time. */
#pragma GCC push_options
#pragma GCC target("fpu=neon")
#include <arm_neon.h>
#pragma GCC pop_options
#include <sys/auxv.h>
#define PI_NEON_ATTR __attribute__((target("fpu=neon")))
#define PI_NEON_PROBE 1
#ifndef HWCAP_NEON
#define HWCAP_NEON (1 << 12)
#endif
#else
#include <arm_neon.h>
#define PI_NEON_ATTR
#endif
#endif

uint64_t kern_pi_mix64(uint64_t z)
{
	z ^= z >> 30;
	z *= PI_MIX1;
	z ^= z >> 27;
	z *= PI_MIX2;
	z ^= z >> 31;
	return z;
}

uint64_t kern_pi_key(uint64_t seed)
{
	return kern_pi_mix64(seed + PI_KEY_ADD);
}

/* The reference; the vector paths use it for their last count % (2 * lanes) samples. */
static uint64_t pi_hits_scalar(uint64_t key, uint64_t start, uint64_t count)
{
	uint64_t hits = 0;
	uint64_t w = key + (start + 1) * PI_GOLDEN;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t r = kern_pi_mix64(w + i * PI_GOLDEN);
		uint64_t x = r >> 33, y = r & 0x7fffffffULL;
		hits += (x * x + y * y) < (1ULL << 62);
	}
	return hits;
}

uint64_t kern_pi_hits_scalar(uint64_t seed, uint64_t start, uint64_t count)
{
	return pi_hits_scalar(kern_pi_key(seed), start, count);
}

/* generic8: eight lanes in portable C (GCC vector extensions). Never chosen automatically: it
 * runs the AVX-512 path's loop logic (8 lanes) on any machine, so tests check it everywhere. */
typedef uint64_t pi_v8 __attribute__((vector_size(64)));

static inline uint64_t pi_v8_sum(const pi_v8 *a)
{
	uint64_t s = 0;
	for (int l = 0; l < 8; l++)
		s += (*a)[l];
	return s;
}

#define PI_VEC_NAME pi_hits_generic8
#define PI_VEC_ATTR
#define PI_LANES 8
#define pi_vec pi_v8
#define V_SPLAT(u) ((pi_v8){0} + (uint64_t)(u))
#define V_LANES(b, s) ((pi_v8){0, 1, 2, 3, 4, 5, 6, 7} * (uint64_t)(s) + (uint64_t)(b))
#define V_ADD(a, b) ((a) + (b))
#define V_XOR(a, b) ((a) ^ (b))
#define V_AND(a, b) ((a) & (b))
#define V_SRL(a, n) ((a) >> (n))
#define V_MULC(a, c) ((a) * (uint64_t)(c))
#define V_MISS(acc, x, y) ((acc) + (((x) * (x) + (y) * (y)) >> 62))
#define V_SUM(a) pi_v8_sum(&(a))
#include "kern_pi_vec.h"

#ifdef PI_X86
/* AVX2 has no 64-bit multiply: a*c = a_lo*c_lo + ((a_hi*c_lo + a_lo*c_hi) << 32). One vpmulld
 * makes both cross products (against c with its halves swapped); their sum matters mod 2^32. */
__attribute__((target("avx2"), always_inline)) static inline __m256i pi_avx2_mulc(__m256i a,
										  uint64_t c)
{
	const __m256i cv = _mm256_set1_epi64x((long long)c);
	const __m256i swapped = _mm256_set1_epi64x((long long)(c >> 32 | c << 32));
	__m256i cross = _mm256_mullo_epi32(a, swapped);
	cross = _mm256_add_epi64(cross, _mm256_srli_epi64(cross, 32));
	return _mm256_add_epi64(_mm256_mul_epu32(a, cv), _mm256_slli_epi64(cross, 32));
}

__attribute__((target("avx2"), always_inline)) static inline uint64_t pi_avx2_sum(__m256i a)
{
	__m128i s = _mm_add_epi64(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
	return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_extract_epi64(s, 1);
}

#define PI_VEC_NAME pi_hits_avx2
#define PI_VEC_ATTR __attribute__((target("avx2")))
#define PI_LANES 4
#define pi_vec __m256i
#define V_SPLAT(u) _mm256_set1_epi64x((long long)(u))
#define V_LANES(b, s)                                                                              \
	_mm256_set_epi64x((long long)((b) + 3 * (s)), (long long)((b) + 2 * (s)),                  \
			  (long long)((b) + (s)), (long long)(b))
#define V_ADD _mm256_add_epi64
#define V_XOR _mm256_xor_si256
#define V_AND _mm256_and_si256
#define V_SRL _mm256_srli_epi64
#define V_MULC pi_avx2_mulc
#define V_MISS(acc, x, y)                                                                          \
	_mm256_add_epi64(acc, _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epu32(x, x),           \
								 _mm256_mul_epu32(y, y)),          \
						 62))
#define V_SUM pi_avx2_sum
#include "kern_pi_vec.h"

#define PI_VEC_NAME pi_hits_avx512
#define PI_VEC_ATTR __attribute__((target("avx512f,avx512dq")))
#define PI_LANES 8
#define pi_vec __m512i
#define V_SPLAT(u) _mm512_set1_epi64((long long)(u))
#define V_LANES(b, s)                                                                              \
	_mm512_set_epi64((long long)((b) + 7 * (s)), (long long)((b) + 6 * (s)),                   \
			 (long long)((b) + 5 * (s)), (long long)((b) + 4 * (s)),                   \
			 (long long)((b) + 3 * (s)), (long long)((b) + 2 * (s)),                   \
			 (long long)((b) + (s)), (long long)(b))
#define V_ADD _mm512_add_epi64
#define V_XOR _mm512_xor_si512
#define V_AND _mm512_and_si512
#define V_SRL _mm512_srli_epi64
#define V_MULC(a, c) _mm512_mullo_epi64(a, _mm512_set1_epi64((long long)(c)))
#define V_MISS(acc, x, y)                                                                          \
	_mm512_add_epi64(acc, _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epu32(x, x),           \
								 _mm512_mul_epu32(y, y)),          \
						 62))
#define V_SUM(a) ((uint64_t)_mm512_reduce_add_epi64(a))
#include "kern_pi_vec.h"

/* __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0). */
static int pi_cpu_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

static int pi_cpu_avx512(void)
{
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}
#endif /* PI_X86 */

#ifdef PI_NEON
/* NEON has no 64-bit lane multiply either; same split as AVX2, cross terms in 32-bit lanes. */
PI_NEON_ATTR static inline uint64x2_t pi_neon_mulc(uint64x2_t a, uint64_t c)
{
	uint32x2_t lo = vmovn_u64(a), hi = vshrn_n_u64(a, 32);
	uint32x2_t clo = vdup_n_u32((uint32_t)c), chi = vdup_n_u32((uint32_t)(c >> 32));
	uint32x2_t cross = vmla_u32(vmul_u32(hi, clo), lo, chi);
	return vaddq_u64(vmull_u32(lo, clo), vshll_n_u32(cross, 32));
}

PI_NEON_ATTR static inline uint64x2_t pi_neon_miss(uint64x2_t acc, uint64x2_t x, uint64x2_t y)
{
	uint32x2_t x32 = vmovn_u64(x), y32 = vmovn_u64(y);
	return vsraq_n_u64(acc, vmlal_u32(vmull_u32(x32, x32), y32, y32), 62);
}

#define PI_VEC_NAME pi_hits_neon
#define PI_VEC_ATTR PI_NEON_ATTR
#define PI_LANES 2
#define pi_vec uint64x2_t
#define V_SPLAT(u) vdupq_n_u64(u)
#define V_LANES(b, s) vcombine_u64(vcreate_u64(b), vcreate_u64((b) + (s)))
#define V_ADD vaddq_u64
#define V_XOR veorq_u64
#define V_AND vandq_u64
#define V_SRL vshrq_n_u64
#define V_MULC pi_neon_mulc
#define V_MISS pi_neon_miss
#define V_SUM(a) (vgetq_lane_u64(a, 0) + vgetq_lane_u64(a, 1))
#include "kern_pi_vec.h"

static int pi_cpu_neon(void)
{
#ifdef PI_NEON_PROBE
	return (getauxval(AT_HWCAP) & HWCAP_NEON) != 0;
#else
	return 1; /* AArch64 always has it */
#endif
}
#endif /* PI_NEON */

static int pi_cpu_any(void)
{
	return 1;
}

typedef uint64_t (*pi_hits_fn)(uint64_t key, uint64_t start, uint64_t count);

struct pi_path {
	const char *name;
	pi_hits_fn hits;
	int (*cpu_runs)(void);
	int automatic; /* may be chosen when nothing is forced */
};

/* Best first: the automatic choice is the first row this CPU runs. */
static const struct pi_path pi_paths[] = {
#ifdef PI_X86
	{"avx512", pi_hits_avx512, pi_cpu_avx512, 1},
	{"avx2", pi_hits_avx2, pi_cpu_avx2, 1},
#endif
#ifdef PI_NEON
	{"neon", pi_hits_neon, pi_cpu_neon, 1},
#endif
	{"scalar", pi_hits_scalar, pi_cpu_any, 1},
	{"generic8", pi_hits_generic8, pi_cpu_any, 0},
};
enum { PI_NPATHS = sizeof pi_paths / sizeof pi_paths[0] };

/* Set once by pi_init under pthread_once, read-only after. */
static pthread_once_t pi_once = PTHREAD_ONCE_INIT;
static int pi_runs[PI_NPATHS];
static const struct pi_path *pi_auto;
/* kern_pi_set_path's choice; NULL: pi_auto. */
static _Atomic(const struct pi_path *) pi_forced;

static const struct pi_path *pi_lookup(const char *name)
{
	for (int i = 0; name && i < PI_NPATHS; i++)
		if (pi_runs[i] && strcmp(pi_paths[i].name, name) == 0)
			return &pi_paths[i];
	return NULL;
}

static void pi_init(void)
{
#ifdef PI_X86
	__builtin_cpu_init(); /* we may run before the constructors that normally call it */
#endif
	for (int i = 0; i < PI_NPATHS; i++)
		pi_runs[i] = pi_paths[i].cpu_runs();
	for (int i = PI_NPATHS - 1; i >= 0; i--)
		if (pi_runs[i] && pi_paths[i].automatic)
			pi_auto = &pi_paths[i];
	/* A forced path this CPU cannot run would crash; the best one is used instead, and
	 * kern_pi_path() says which. */
	const struct pi_path *env = pi_lookup(getenv("TESSERA_KERNEL_PATH"));
	if (env)
		pi_auto = env;
}

static const struct pi_path *pi_current(void)
{
	pthread_once(&pi_once, pi_init);
	const struct pi_path *p = atomic_load_explicit(&pi_forced, memory_order_relaxed);
	return p ? p : pi_auto;
}

uint64_t kern_pi_hits_key(uint64_t key, uint64_t start, uint64_t count)
{
	return pi_current()->hits(key, start, count);
}

const char *kern_pi_path(void)
{
	return pi_current()->name;
}

int kern_pi_paths(const char **names, int max)
{
	int n = 0;
	pthread_once(&pi_once, pi_init);
	for (int i = 0; i < PI_NPATHS; i++) {
		if (!pi_runs[i])
			continue;
		if (n < max)
			names[n] = pi_paths[i].name;
		n++;
	}
	return n;
}

ts_err kern_pi_set_path(const char *name)
{
	const struct pi_path *p = NULL;
	pthread_once(&pi_once, pi_init);
	if (name && strcmp(name, "auto") != 0 && !(p = pi_lookup(name)))
		return TS_ERR_NOT_FOUND;
	atomic_store_explicit(&pi_forced, p, memory_order_relaxed);
	return TS_OK;
}

ts_err kern_pi_hits_path(const char *name, uint64_t seed, uint64_t start, uint64_t count,
			 uint64_t *hits)
{
	pthread_once(&pi_once, pi_init);
	const struct pi_path *p = pi_lookup(name);
	if (!p)
		return TS_ERR_NOT_FOUND;
	*hits = p->hits(kern_pi_key(seed), start, count);
	return TS_OK;
}
