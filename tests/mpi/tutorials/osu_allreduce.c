/* An OSU-style collective test: MPI_Allreduce (MPI_SUM over floats) for message
 * sizes 4 .. MAX bytes (argv[1], default 4096), ITER iterations (argv[2], default
 * 50). The average latency (us, the slowest rank's) goes to stderr; stdout gets one
 * checked result per size. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int max = argc > 1 ? atoi(argv[1]) : 4096, iters = argc > 2 ? atoi(argv[2]) : 50;
  float* s = malloc(max);
  float* r = malloc(max);
  if (rank == 0) fprintf(stderr, "# OSU-style MPI Allreduce Latency Test\n# Size       Avg Latency(us)\n");
  for (int bytes = 4; bytes <= max; bytes *= 2) {
    const int n = bytes / 4;
    for (int i = 0; i < n; ++i) s[i] = (float)(rank + i);
    MPI_Barrier(MPI_COMM_WORLD);
    double t = MPI_Wtime();
    for (int it = 0; it < iters; ++it) MPI_Allreduce(s, r, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    t = (MPI_Wtime() - t) * 1e6 / iters;
    double max_t;
    MPI_Reduce(&t, &max_t, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    int bad = 0;
    for (int i = 0; i < n; ++i) bad += r[i] != (float)(size * (size - 1) / 2 + size * i);
    if (rank == 0) fprintf(stderr, "%-10d%18.2f\n", bytes, max_t);
    printf("rank %d bytes %d: %s\n", rank, bytes, bad ? "WRONG" : "ok");
  }
  free(s);
  free(r);
  MPI_Finalize();
  return 0;
}
