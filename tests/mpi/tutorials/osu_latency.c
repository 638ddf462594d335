/* An OSU-style latency test: ping-pong between ranks 0 and 1 over message sizes
 * 0, 1, 2, 4, ... MAX (argv[1], default 4096), ITER iterations (argv[2], default
 * 100) after a warm-up. Latencies (one-way, us) go to stderr; stdout gets one line
 * per size saying whether every byte arrived intact (so that outputs compare). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int max = argc > 1 ? atoi(argv[1]) : 4096, iters = argc > 2 ? atoi(argv[2]) : 100, skip = 10;
  if (size != 2) {
    if (rank == 0) fprintf(stderr, "This test requires exactly two processes\n");
    MPI_Finalize();
    return 1;
  }
  char* s_buf = malloc(max > 0 ? max : 1);
  char* r_buf = malloc(max > 0 ? max : 1);
  if (rank == 0) fprintf(stderr, "# OSU-style MPI Latency Test\n# Size          Latency (us)\n");
  for (int n = 0; n <= max; n = n ? 2 * n : 1) {
    memset(s_buf, 'a' + rank, n);
    memset(r_buf, 0, n);
    double t_start = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < iters + skip; ++i) {
      if (i == skip) t_start = MPI_Wtime();
      if (rank == 0) {
        MPI_Send(s_buf, n, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
        MPI_Recv(r_buf, n, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      } else {
        MPI_Recv(r_buf, n, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(s_buf, n, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
      }
    }
    double latency = (MPI_Wtime() - t_start) * 1e6 / (2.0 * iters);
    int bad = 0;
    for (int i = 0; i < n; ++i) bad += r_buf[i] != 'a' + (1 - rank);
    if (rank == 0) fprintf(stderr, "%-10d%18.2f\n", n, latency);
    printf("rank %d size %d: %s\n", rank, n, bad ? "CORRUPT" : "ok");
  }
  free(s_buf);
  free(r_buf);
  MPI_Finalize();
  return 0;
}
