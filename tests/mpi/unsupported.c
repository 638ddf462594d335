/* FMI only, in a build without FMI's any-source / non-blocking probe (issues 18 and
 * 19; docs/mpi.md): MPI_ANY_SOURCE among 3 processes and an MPI_Iprobe that finds
 * nothing queued return MPI_ERR_UNSUPPORTED_OPERATION with a message naming the call,
 * and the job goes on. Prints "unsupported: ok" per rank when all of it holds. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size, ok = 1, x = 0, flag = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  char msg[MPI_MAX_ERROR_STRING];
  int len;
  int err = MPI_Recv(&x, 1, MPI_INT, MPI_ANY_SOURCE, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  MPI_Error_string(err, msg, &len);
  if (err != MPI_ERR_UNSUPPORTED_OPERATION || !strstr(msg, "MPI_Recv") || !strstr(msg, "MPI_ANY_SOURCE")) {
    printf("rank %d: recv any source: %d %s\n", rank, err, msg);
    ok = 0;
  }
  err = MPI_Iprobe((rank + 1) % size, 0, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
  MPI_Error_string(err, msg, &len);
  if (err != MPI_ERR_UNSUPPORTED_OPERATION || !strstr(msg, "MPI_Iprobe")) {
    printf("rank %d: iprobe: %d %s\n", rank, err, msg);
    ok = 0;
  }
  /* a message already queued is seen by MPI_Iprobe */
  MPI_Send(&rank, 1, MPI_INT, rank, 5, MPI_COMM_WORLD);
  MPI_Status st;
  err = MPI_Iprobe(rank, 5, MPI_COMM_WORLD, &flag, &st);
  if (err != MPI_SUCCESS || !flag || st.MPI_TAG != 5) ok = 0;
  MPI_Recv(&x, 1, MPI_INT, rank, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  int all;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  if (all) printf("rank %d: unsupported: ok\n", rank);
  MPI_Finalize();
  return all ? 0 : 1;
}
