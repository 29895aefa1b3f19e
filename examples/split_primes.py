# A split program: counts the primes in its unit's range [TESSERA_UNIT_START,
# TESSERA_UNIT_START + TESSERA_UNIT_COUNT) and prints the count as a JSON number; the job sums
# the units' counts exactly.
#
#   tessera submit program examples/split_primes.py --space 100000000 --units 100 --combine sum
#
# (the primes below 10^8: 5761455). Run by hand, it counts [0, 1000000) unless told otherwise.
import json
import math
import os

start = int(os.environ.get("TESSERA_UNIT_START", "0"))
count = int(os.environ.get("TESSERA_UNIT_COUNT", "1000000"))
end = start + count

# The primes up to sqrt(end), then a sieve of the segment [start, end) with them.
limit = math.isqrt(max(end - 1, 0))
small = bytearray([1]) * (limit + 1)
small[0:2] = b"\0\0"[: limit + 1]
for p in range(2, math.isqrt(limit) + 1):
    if small[p]:
        small[p * p :: p] = bytes(len(range(p * p, limit + 1, p)))
segment = bytearray([1]) * count
for p in (i for i in range(2, limit + 1) if small[i]):
    first = max(p * p, (start + p - 1) // p * p)
    if first < end:
        segment[first - start :: p] = bytes(len(range(first - start, count, p)))
for n in range(start, min(end, 2)):  # 0 and 1 are not primes
    segment[n - start] = 0
print(json.dumps(sum(segment)))
