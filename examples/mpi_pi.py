# Monte Carlo pi with mpi4py: every rank draws its share of the samples from its own seeded
# stream, rank 0 adds the hits and prints the estimate.
#
#   tessera run examples/mpi_pi.py -n 3 -- 3000000
#
# The output depends only on the samples, the seed and the number of processes, never on timing
# or the machine: replicas of the same job print the same bytes.
import random
import sys

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
samples = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1

# This rank's share: even slices, the first samples % size ranks one sample more.
mine = samples // size + (1 if rank < samples % size else 0)
rng = random.Random(seed * 1000003 + rank)
hits = 0
for _ in range(mine):
    x, y = rng.random(), rng.random()
    if x * x + y * y <= 1.0:
        hits += 1

parts = comm.gather((mine, hits), root=0)
if rank == 0:
    for r, (n, h) in enumerate(parts):
        print("rank %d: %d of %d samples inside" % (r, h, n))
    total = sum(h for _, h in parts)
    print("pi ~ %.6f (%d samples, %d processes)" % (4.0 * total / samples, samples, size))
