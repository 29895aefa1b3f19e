/* Template of the montecarlo_pi vector loop (no include guard: kern_pi_simd.c includes it once
 * per instruction set). One source for every SIMD path, so that a path's only own code is the
 * few lane operations below, each a line or two of intrinsics.
 *
 * Before including, define:
 *   PI_VEC_NAME      the function's name        PI_VEC_ATTR   its attributes (a target)
 *   pi_vec           a vector of PI_LANES uint64_t lanes
 *   V_SPLAT(u)       every lane u               V_LANES(b, s) lane l is b + l*s (mod 2^64)
 *   V_ADD, V_XOR, V_AND (a, b)                 V_SRL(a, n)   logical right shift, constant n
 *   V_MULC(a, c)     a*c mod 2^64, c a 64-bit constant
 *   V_MISS(acc, x, y) acc + ((x*x + y*y) >> 62), x and y below 2^31
 *   V_SUM(a)         the sum of the lanes
 * The macros are undefined at the end. */

PI_VEC_ATTR static uint64_t PI_VEC_NAME(uint64_t key, uint64_t start, uint64_t count)
{
	/* Two independent vectors per iteration hide the multiplies' latency. */
	enum { UNROLL = 2, STEP = UNROLL * PI_LANES };
	const uint64_t blocks = count / STEP, done = blocks * STEP;
	const uint64_t w0 = key + (start + 1) * PI_GOLDEN;
	const pi_vec step = V_SPLAT((uint64_t)STEP * PI_GOLDEN), low31 = V_SPLAT(0x7fffffffULL);
	pi_vec w[UNROLL], miss[UNROLL];
	uint64_t missed = 0;

	for (int u = 0; u < UNROLL; u++) {
		w[u] = V_LANES(w0 + (uint64_t)u * PI_LANES * PI_GOLDEN, PI_GOLDEN);
		miss[u] = V_SPLAT(0);
	}
	for (uint64_t b = 0; b < blocks; b++) {
		for (int u = 0; u < UNROLL; u++) {
			pi_vec z = w[u];
			w[u] = V_ADD(w[u], step);
			z = V_XOR(z, V_SRL(z, 30));
			z = V_MULC(z, PI_MIX1);
			z = V_XOR(z, V_SRL(z, 27));
			z = V_MULC(z, PI_MIX2);
			/* r = z ^ z >> 31, and r >> 33 == z >> 33: x needs no xor. */
			pi_vec x = V_SRL(z, 33);
			pi_vec y = V_AND(V_XOR(z, V_SRL(z, 31)), low31);
			miss[u] = V_MISS(miss[u], x, y);
		}
	}
	for (int u = 0; u < UNROLL; u++)
		missed += V_SUM(miss[u]);
	return done - missed + pi_hits_scalar(key, start + done, count - done);
}

#undef PI_VEC_NAME
#undef PI_VEC_ATTR
#undef PI_LANES
#undef pi_vec
#undef V_SPLAT
#undef V_LANES
#undef V_ADD
#undef V_XOR
#undef V_AND
#undef V_SRL
#undef V_MULC
#undef V_MISS
#undef V_SUM
