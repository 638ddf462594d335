/* Non-blocking collectives that really overlap (FMI's requests, issue 18): every
 * rank but the root starts MPI_Ibcast and MPI_Iallreduce, then sends the root a
 * message, which the root receives before it starts the same collectives. Run as
 * blocking calls this would wait for ever. Also MPI_Test and MPI_Waitany on
 * collective requests, and MPI_Sendrecv around a ring with messages larger than any
 * channel buffers (every rank sends first). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int root = size / 2;
  int b = rank == root ? 1234 : -1, x = rank + 1, sum = 0;
  MPI_Request rq[2];
  if (rank != root) {
    MPI_Ibcast(&b, 1, MPI_INT, root, MPI_COMM_WORLD, &rq[0]);
    MPI_Iallreduce(&x, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &rq[1]);
    MPI_Send(&rank, 1, MPI_INT, root, 5, MPI_COMM_WORLD);
  } else {
    for (int p = 0; p < size; ++p) {
      if (p == root) continue;
      int v;
      MPI_Recv(&v, 1, MPI_INT, p, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      printf("rank %d: got %d before the collectives\n", rank, v);
    }
    MPI_Ibcast(&b, 1, MPI_INT, root, MPI_COMM_WORLD, &rq[0]);
    MPI_Iallreduce(&x, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &rq[1]);
  }
  MPI_Waitall(2, rq, MPI_STATUSES_IGNORE);
  printf("rank %d: ibcast %d iallreduce %d\n", rank, b, sum);

  /* a Test loop and Waitany on collective requests, in place */
  int v[2] = {rank, 2 * rank}, flag = 0;
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &r);
  while (!flag) MPI_Test(&r, &flag, MPI_STATUS_IGNORE);
  printf("rank %d: test loop: %d %d\n", rank, v[0], v[1]);
  int g[64], s = rank * 3, idx;
  MPI_Request two[2];
  MPI_Iallgather(&s, 1, MPI_INT, g, 1, MPI_INT, MPI_COMM_WORLD, &two[0]);
  MPI_Ibarrier(MPI_COMM_WORLD, &two[1]);
  MPI_Waitany(2, two, &idx, MPI_STATUS_IGNORE);
  MPI_Waitany(2, two, &idx, MPI_STATUS_IGNORE);
  printf("rank %d: iallgather last %d, both done %d\n", rank, g[size - 1],
         two[0] == MPI_REQUEST_NULL && two[1] == MPI_REQUEST_NULL);

  const int big = 2 << 20; /* ints: 8 MiB each way, more than the sockets buffer */
  int* out = malloc(sizeof(int) * big);
  int* in = malloc(sizeof(int) * big);
  for (int i = 0; i < big; ++i) out[i] = i + rank;
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  MPI_Sendrecv(out, big, MPI_INT, next, 8, in, big, MPI_INT, prev, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  long bad = 0;
  for (int i = 0; i < big; ++i) bad += in[i] != i + prev;
  printf("rank %d: 8 MiB sendrecv from %d: %ld wrong\n", rank, prev, bad);
  free(out);
  free(in);
  MPI_Finalize();
  return 0;
}
