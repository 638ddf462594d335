/* MPI_ANY_SOURCE on any number of processes and the calls that look without
 * waiting (MPI_Iprobe, MPI_Test loops, MPI_Waitany over several sources): what FMI's
 * any-source and non-blocking probe (issues 18, 19) give the layer. Lines are sorted
 * before comparing,
 * so the order in which sources are served does not matter. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank != 0) {
    for (int tag = 1; tag <= 3; ++tag) {
      int v = 100 * rank + tag;
      MPI_Send(&v, 1, MPI_INT, 0, tag, MPI_COMM_WORLD);
    }
  } else {
    /* all tag-2 messages first, from whoever sends, then the rest with any tag */
    for (int i = 1; i < size; ++i) {
      int v;
      MPI_Status st;
      MPI_Recv(&v, 1, MPI_INT, MPI_ANY_SOURCE, 2, MPI_COMM_WORLD, &st);
      printf("rank 0: tag 2: %d from %d\n", v, st.MPI_SOURCE);
    }
    int last_tag[64] = {0};
    for (int i = 1; i < 2 * size - 1; ++i) {
      int v;
      MPI_Status st;
      MPI_Recv(&v, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
      printf("rank 0: any: %d from %d tag %d%s\n", v, st.MPI_SOURCE, st.MPI_TAG,
             st.MPI_TAG > last_tag[st.MPI_SOURCE] ? "" : " OUT OF ORDER");
      last_tag[st.MPI_SOURCE] = st.MPI_TAG;
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);

  /* MPI_Iprobe polling for a message that comes later; MPI_Probe with any source */
  if (rank == size - 1 && size > 1) {
    int big[300];
    for (int i = 0; i < 300; ++i) big[i] = i;
    MPI_Send(big, 300, MPI_INT, 0, 9, MPI_COMM_WORLD);
  } else if (rank == 0 && size > 1) {
    int flag = 0;
    MPI_Status st;
    while (!flag) MPI_Iprobe(MPI_ANY_SOURCE, 9, MPI_COMM_WORLD, &flag, &st);
    int count;
    MPI_Get_count(&st, MPI_INT, &count);
    printf("rank 0: iprobe: %d ints from %d\n", count, st.MPI_SOURCE);
    MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    int* buf = malloc(sizeof(int) * count);
    MPI_Recv(buf, count, MPI_INT, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    printf("rank 0: probe then recv: [299] = %d\n", buf[299]);
    free(buf);
  }
  int flag;
  MPI_Iprobe(MPI_ANY_SOURCE, 77, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
  printf("rank %d: iprobe for nothing: %d\n", rank, flag);
  MPI_Barrier(MPI_COMM_WORLD);

  /* Irecv from any source + a Test loop; Waitany over one receive per source */
  if (rank == 0) {
    MPI_Request rq[64];
    int got[64];
    for (int p = 1; p < size; ++p) MPI_Irecv(&got[p], 1, MPI_INT, p, 11, MPI_COMM_WORLD, &rq[p - 1]);
    for (int k = 1; k < size; ++k) {
      int idx;
      MPI_Status st;
      MPI_Waitany(size - 1, rq, &idx, &st);
      printf("rank 0: waitany: %d from %d\n", got[idx + 1], st.MPI_SOURCE);
    }
    int v = -1, done = 0;
    MPI_Request r;
    MPI_Irecv(&v, 1, MPI_INT, MPI_ANY_SOURCE, 12, MPI_COMM_WORLD, &r);
    if (size > 1) MPI_Send(&done, 1, MPI_INT, 1 % size, 13, MPI_COMM_WORLD);
    else v = 0, done = 1, MPI_Send(&v, 1, MPI_INT, 0, 12, MPI_COMM_WORLD);
    MPI_Status st;
    for (done = 0; !done;) MPI_Test(&r, &done, &st);
    printf("rank 0: test loop: %d\n", v);
  } else {
    int v = rank * rank;
    MPI_Send(&v, 1, MPI_INT, 0, 11, MPI_COMM_WORLD);
    if (rank == 1) {
      int go;
      MPI_Recv(&go, 1, MPI_INT, 0, 13, MPI_COMM_WORLD, MPI_STATUS_IGNORE); /* only after rank 0 tests */
      v = 4242;
      MPI_Send(&v, 1, MPI_INT, 0, 12, MPI_COMM_WORLD);
    }
  }
  MPI_Finalize();
  return 0;
}
