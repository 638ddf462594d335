/* Point to point through the MPI layer: tags and the unexpected-message queue
 * (messages received in another order than sent), MPI_ANY_TAG, receive counts as
 * upper bounds and MPI_Get_count, MPI_Probe for a specific source, status fields,
 * MPI_PROC_NULL, sends to oneself, MPI_Sendrecv around a ring, empty and large
 * messages, MPI_ERR_TRUNCATE with MPI_ERRORS_RETURN, and the request calls
 * (Isend/Irecv/Wait/Waitall/Waitany/Test). MPI_ANY_SOURCE on up to 2 processes.
 * Every rank prints what it checked; the test compares with OpenMPI. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank, size;

#define SAY(...) do { printf("rank %d: ", rank); printf(__VA_ARGS__); printf("\n"); } while (0)

static void tags_out_of_order(void) {
  /* rank r sends tags 1, 2, 3 (values 100r+tag) to r+1, which receives 3, 1, 2. */
  if (size < 2) return;
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  for (int tag = 1; tag <= 3; ++tag) {
    int v = 100 * rank + tag;
    MPI_Send(&v, 1, MPI_INT, next, tag, MPI_COMM_WORLD);
  }
  const int order[3] = {3, 1, 2};
  for (int i = 0; i < 3; ++i) {
    int v = -1;
    MPI_Status st;
    MPI_Recv(&v, 1, MPI_INT, prev, order[i], MPI_COMM_WORLD, &st);
    SAY("tag %d from %d: %d (status source %d tag %d)", order[i], prev, v, st.MPI_SOURCE, st.MPI_TAG);
  }
}

static void same_tag_order_and_any_tag(void) {
  /* Non-overtaking: five messages with one tag arrive in order; ANY_TAG takes the oldest. */
  if (size < 2) return;
  if (rank == 0) {
    for (int i = 0; i < 5; ++i) MPI_Send(&i, 1, MPI_INT, 1, 7, MPI_COMM_WORLD);
    int x = 99;
    MPI_Send(&x, 1, MPI_INT, 1, 8, MPI_COMM_WORLD);
  } else if (rank == 1) {
    int x;
    MPI_Status st;
    MPI_Recv(&x, 1, MPI_INT, 0, 8, MPI_COMM_WORLD, &st);
    SAY("tag 8 first: %d", x);
    for (int i = 0; i < 5; ++i) {
      MPI_Recv(&x, 1, MPI_INT, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
      SAY("any tag #%d: %d tag %d", i, x, st.MPI_TAG);
    }
  }
}

static void counts_and_probe(void) {
  /* Receive counts are upper bounds; MPI_Get_count tells what arrived; a probe sizes the buffer. */
  if (size < 2) return;
  const int last = size - 1;
  if (rank == 0) {
    int n = 100 + size, data[128]; /* over the inline size: queued with its payload */
    for (int i = 0; i < n; ++i) data[i] = i * i;
    MPI_Send(data, n, MPI_INT, last, 21, MPI_COMM_WORLD);
    MPI_Send(data, 5, MPI_INT, last, 22, MPI_COMM_WORLD);
    MPI_Send(data, 0, MPI_INT, last, 23, MPI_COMM_WORLD);
  } else if (rank == last) {
    MPI_Status st;
    int count, buf[64];
    MPI_Probe(0, 22, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_INT, &count);
    SAY("probe tag 22: %d ints from %d, tag %d", count, st.MPI_SOURCE, st.MPI_TAG);
    MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_INT, &count);
    SAY("probe any tag: tag %d, %d ints", st.MPI_TAG, count);
    int* dyn = malloc(sizeof(int) * count);
    MPI_Recv(dyn, count, MPI_INT, 0, st.MPI_TAG, MPI_COMM_WORLD, &st);
    long s = 0;
    for (int i = 0; i < count; ++i) s += dyn[i];
    free(dyn);
    SAY("received %d ints, sum %ld", count, s);
    MPI_Recv(buf, 64, MPI_INT, 0, 22, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_INT, &count);
    SAY("upper bound 64, got %d ints: %d %d %d %d %d", count, buf[0], buf[1], buf[2], buf[3], buf[4]);
    MPI_Get_count(&st, MPI_DOUBLE, &count);
    SAY("as doubles: %s", count == MPI_UNDEFINED ? "MPI_UNDEFINED" : "a number");
    MPI_Recv(buf, 64, MPI_INT, 0, 23, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_INT, &count);
    SAY("empty message: %d ints, tag %d", count, st.MPI_TAG);
  }
}

static void proc_null_and_self(void) {
  MPI_Status st;
  int x = 5;
  MPI_Send(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD);
  MPI_Recv(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &st);
  int count;
  MPI_Get_count(&st, MPI_INT, &count);
  SAY("PROC_NULL recv: source %s tag %s count %d x %d", st.MPI_SOURCE == MPI_PROC_NULL ? "PROC_NULL" : "?",
      st.MPI_TAG == MPI_ANY_TAG ? "ANY_TAG" : "?", count, x);
  /* to oneself: small messages are buffered */
  int a = 1000 + rank, b = 2000 + rank, r1, r2;
  MPI_Send(&a, 1, MPI_INT, rank, 1, MPI_COMM_WORLD);
  MPI_Send(&b, 1, MPI_INT, rank, 2, MPI_COMM_WORLD);
  MPI_Recv(&r2, 1, MPI_INT, rank, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  MPI_Recv(&r1, 1, MPI_INT, rank, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  SAY("self: %d %d", r1, r2);
}

static void sendrecv_ring(void) {
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  double out[3] = {rank, rank * 0.5, -rank}, in[3] = {0, 0, 0};
  MPI_Status st;
  MPI_Sendrecv(out, 3, MPI_DOUBLE, next, 5, in, 3, MPI_DOUBLE, prev, 5, MPI_COMM_WORLD, &st);
  SAY("sendrecv from %d: %g %g %g (source %d)", prev, in[0], in[1], in[2], st.MPI_SOURCE);
}

static void large(void) {
  /* 256 KiB (over the inline size and the usual eager limits) around the ring */
  if (size < 2) return;
  const int n = 65536;
  int* out = malloc(sizeof(int) * n);
  int* in = malloc(sizeof(int) * n);
  for (int i = 0; i < n; ++i) out[i] = i ^ rank;
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  if (rank % 2 == 0) {
    MPI_Send(out, n, MPI_INT, next, 9, MPI_COMM_WORLD);
    MPI_Recv(in, n, MPI_INT, prev, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else {
    MPI_Recv(in, n, MPI_INT, prev, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(out, n, MPI_INT, next, 9, MPI_COMM_WORLD);
  }
  long bad = 0;
  for (int i = 0; i < n; ++i) bad += in[i] != (i ^ prev);
  SAY("large from %d: %ld wrong", prev, bad);
  free(out);
  free(in);
}

static void truncate_error(void) {
  if (size < 2) return;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (rank == 0) {
    int v[4] = {1, 2, 3, 4};
    MPI_Send(v, 4, MPI_INT, 1, 30, MPI_COMM_WORLD);
  } else if (rank == 1) {
    int v[2];
    MPI_Status st;
    int err = MPI_Recv(v, 2, MPI_INT, 0, 30, MPI_COMM_WORLD, &st);
    int cls;
    MPI_Error_class(err, &cls);
    SAY("truncated recv: %s, first %d %d", cls == MPI_ERR_TRUNCATE ? "MPI_ERR_TRUNCATE" : "other", v[0], v[1]);
  }
  /* the same over the inline size of FMI's framing (a separate payload message) */
  if (rank == 0) {
    int big[1000];
    for (int i = 0; i < 1000; ++i) big[i] = i;
    MPI_Send(big, 1000, MPI_INT, 1, 31, MPI_COMM_WORLD);
  } else if (rank == 1) {
    int small[100];
    int err = MPI_Recv(small, 100, MPI_INT, 0, 31, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    int cls;
    MPI_Error_class(err, &cls);
    SAY("truncated large recv: %s, [99] %d", cls == MPI_ERR_TRUNCATE ? "MPI_ERR_TRUNCATE" : "other", small[99]);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
}

static void requests(void) {
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  int in[2] = {-1, -1}, out[2] = {10 * rank, 10 * rank + 1};
  MPI_Request rq[4];
  MPI_Irecv(&in[0], 1, MPI_INT, prev, 40, MPI_COMM_WORLD, &rq[0]);
  MPI_Irecv(&in[1], 1, MPI_INT, next, 41, MPI_COMM_WORLD, &rq[1]);
  MPI_Isend(&out[0], 1, MPI_INT, next, 40, MPI_COMM_WORLD, &rq[2]);
  MPI_Isend(&out[1], 1, MPI_INT, prev, 41, MPI_COMM_WORLD, &rq[3]);
  MPI_Status st[4];
  MPI_Waitall(4, rq, st);
  SAY("waitall: %d from %d (tag %d), %d from %d (tag %d), null %d", in[0], st[0].MPI_SOURCE, st[0].MPI_TAG,
      in[1], st[1].MPI_SOURCE, st[1].MPI_TAG, rq[0] == MPI_REQUEST_NULL && rq[3] == MPI_REQUEST_NULL);
  /* Waitany over two receives and an empty slot; Wait on the rest; Test on a completed send */
  int a = -1, b = -1, done = 0;
  MPI_Request r2[3];
  r2[2] = MPI_REQUEST_NULL;
  MPI_Irecv(&a, 1, MPI_INT, prev, 42, MPI_COMM_WORLD, &r2[0]);
  MPI_Irecv(&b, 1, MPI_INT, prev, 43, MPI_COMM_WORLD, &r2[1]);
  int v = rank * 7;
  MPI_Send(&v, 1, MPI_INT, next, 42, MPI_COMM_WORLD);
  MPI_Send(&v, 1, MPI_INT, next, 43, MPI_COMM_WORLD);
  for (int k = 0; k < 2; ++k) {
    int idx;
    MPI_Status s;
    MPI_Waitany(3, r2, &idx, &s);
    done += s.MPI_TAG;
  }
  int idx;
  MPI_Waitany(3, r2, &idx, MPI_STATUS_IGNORE);
  SAY("waitany: %d %d, tags %d, then %s", a, b, done, idx == MPI_UNDEFINED ? "MPI_UNDEFINED" : "?");
  MPI_Request s;
  int flag = 0;
  MPI_Isend(&v, 1, MPI_INT, next, 44, MPI_COMM_WORLD, &s);
  MPI_Request r;
  int c = -1;
  MPI_Irecv(&c, 1, MPI_INT, prev, 44, MPI_COMM_WORLD, &r);
  MPI_Wait(&s, MPI_STATUS_IGNORE);
  while (!flag) MPI_Test(&r, &flag, MPI_STATUS_IGNORE);
  SAY("test: flag %d value %d null %d", flag, c, r == MPI_REQUEST_NULL);
  MPI_Wait(&r, MPI_STATUS_IGNORE); /* on MPI_REQUEST_NULL: returns at once */
}

static void any_source(void) {
  /* MPI_ANY_SOURCE where the FMI build without the any-source probe supports it: 2 processes */
  if (size != 2) return;
  int v = 50 + rank, got = -1;
  MPI_Status st;
  MPI_Send(&v, 1, MPI_INT, 1 - rank, 60, MPI_COMM_WORLD);
  MPI_Recv(&got, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
  SAY("any source: %d from %d tag %d", got, st.MPI_SOURCE, st.MPI_TAG);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  tags_out_of_order();
  same_tag_order_and_any_tag();
  counts_and_probe();
  proc_null_and_self();
  sendrecv_ring();
  large();
  truncate_error();
  requests();
  any_source();
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  return 0;
}
