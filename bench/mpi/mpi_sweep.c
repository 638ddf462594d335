/* The MPI side of bench/mpi.sh: OSU-style ping-pong latency (ranks 0 and 1, one way =
 * half the round trip) and MPI_Allreduce (MPI_SUM over floats, all ranks) over a
 * sweep of sizes, built unmodified with fmi-mpicc (the MPI layer) and with OpenMPI's
 * mpicc. Each point times ITERS iterations one by one after WARMUP and rank 0
 * prints a CSV row in fmi-bench's format (median, p90 and min in us; the allreduce
 * time of an iteration is the slowest rank's, as fmi-bench takes it):
 *   tool,op,channel,peers,bytes,iters,median_us,p90_us,min_us,bw_MiBps,pred_us,pred_usd
 *
 *   mpi_sweep TOOL OPS SIZES ITERS WARMUP      e.g. mpi_sweep fmi-mpi pingpong,allreduce 8,1024 1000 10
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void row(const char* tool, const char* op, int peers, long bytes, int iters, double* t) {
  qsort(t, iters, sizeof(double), cmp);
  const double med = t[iters / 2], p90 = t[(int)(iters * 0.9)], mn = t[0];
  printf("%s,%s,MPI,%d,%ld,%d,%.3f,%.3f,%.3f,%.1f,,\n", tool, op, peers, bytes, iters, med, p90, mn,
         med > 0 ? bytes / (med * 1e-6) / (1 << 20) : 0.0);
  fflush(stdout);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 6) {
    if (rank == 0) fprintf(stderr, "usage: mpi_sweep TOOL OPS SIZES ITERS WARMUP\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const char* tool = argv[1];
  const int iters = atoi(argv[4]), warmup = atoi(argv[5]);
  double* t = malloc(sizeof(double) * iters);
  char* sizes = strdup(argv[3]);
  for (char* s = strtok(sizes, ","); s; s = strtok(NULL, ",")) {
    const long bytes = atol(s);
    char* a = calloc(bytes + 4, 1);
    char* b = calloc(bytes + 4, 1);
    if (strstr(argv[2], "pingpong") && size >= 2) {
      for (int i = -warmup; i < iters; ++i) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        if (rank == 0) {
          MPI_Send(a, (int)bytes, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
          MPI_Recv(b, (int)bytes, MPI_BYTE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
          MPI_Recv(b, (int)bytes, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          MPI_Send(a, (int)bytes, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
        }
        if (i >= 0) t[i] = (MPI_Wtime() - t0) * 1e6 / 2;
      }
      if (rank == 0) row(tool, "pingpong", 2, bytes, iters, t);
    }
    if (strstr(argv[2], "allreduce")) {
      const int n = (int)(bytes / 4);
      for (int i = -warmup; i < iters; ++i) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        MPI_Allreduce(a, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double dt = (MPI_Wtime() - t0) * 1e6, slowest;
        MPI_Reduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        if (i >= 0) t[i] = slowest;
      }
      if (rank == 0) row(tool, "allreduce", size, n * 4L, iters, t);
    }
    free(a);
    free(b);
  }
  free(sizes);
  free(t);
  MPI_Finalize();
  return 0;
}
