/* Small calls public programs use (OSU micro-benchmarks, tutorials): MPI_Alloc_mem /
 * MPI_Free_mem, the predefined attributes through MPI_Comm_get_attr and MPI_Attr_get,
 * MPI_Get_library_version, MPI_Query_thread, MPI_Is_thread_main, MPI_Op_commutative,
 * MPI_Reduce_local (predefined and a non-commutative user operator), and MPI_Testany,
 * MPI_Testsome, MPI_Waitsome over receives from every other rank (and over no active
 * request at all). One fact per line, prefixed by the rank. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

static int rank, size;

/* digits: inout = in * 10 + inout, shows which operand is which */
static void digits(void* in, void* inout, int* len, MPI_Datatype* t) {
  (void)t;
  int* a = in;
  int* b = inout;
  for (int i = 0; i < *len; ++i) b[i] = a[i] * 10 + b[i];
}

/* Receives one int from every other rank with `tag` (each sends rank * 100 + tag),
 * completing them with `how` (0 Testany, 1 Testsome, 2 Waitsome); prints the sum of
 * the values, the sum of the sources and how many completions each source had. */
static void gather_from_all(int how, int tag) {
  int vals[64], srcs_done[64] = {0};
  MPI_Request reqs[64];
  int n = 0;
  for (int r = 0; r < size; ++r)
    if (r != rank) MPI_Irecv(&vals[n], 1, MPI_INT, r, tag, MPI_COMM_WORLD, &reqs[n]), ++n;
  for (int r = 0; r < size; ++r) {
    if (r == rank) continue;
    int v = rank * 100 + tag;
    MPI_Send(&v, 1, MPI_INT, r, tag, MPI_COMM_WORLD);
  }
  long sum = 0, src_sum = 0;
  int done = 0;
  while (done < n) {
    MPI_Status st[64];
    int idx[64], out = 0;
    if (how == 0) {
      int flag = 0;
      MPI_Testany(n, reqs, &idx[0], &flag, &st[0]);
      out = flag ? 1 : 0;
    } else if (how == 1) {
      MPI_Testsome(n, reqs, &out, idx, st);
    } else {
      MPI_Waitsome(n, reqs, &out, idx, st);
    }
    for (int k = 0; k < out; ++k) {
      sum += vals[idx[k]];
      src_sum += st[k].MPI_SOURCE;
      srcs_done[st[k].MPI_SOURCE]++;
      if (st[k].MPI_TAG != tag) printf("%d: WRONG tag %d\n", rank, st[k].MPI_TAG);
    }
    done += out;
  }
  int once = 1;
  for (int r = 0; r < size; ++r)
    if (srcs_done[r] != (r == rank ? 0 : 1)) once = 0;
  printf("%d: how %d tag %d: sum %ld sources %ld each once %d\n", rank, how, tag, sum, src_sum,
         once);
  /* every request is now MPI_REQUEST_NULL: flag true / MPI_UNDEFINED */
  int flag = 0, index = 0, out = 0, idx[64];
  if (n > 0) {
    MPI_Testany(n, reqs, &index, &flag, MPI_STATUS_IGNORE);
    printf("%d: how %d: Testany over null requests flag %d index undefined %d\n", rank, how, flag,
           index == MPI_UNDEFINED);
    MPI_Testsome(n, reqs, &out, idx, MPI_STATUSES_IGNORE);
    printf("%d: how %d: Testsome over null requests undefined %d\n", rank, how,
           out == MPI_UNDEFINED);
    MPI_Waitsome(n, reqs, &out, idx, MPI_STATUSES_IGNORE);
    printf("%d: how %d: Waitsome over null requests undefined %d\n", rank, how,
           out == MPI_UNDEFINED);
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  int provided = -1, is_main = -1;
  MPI_Query_thread(&provided);
  MPI_Is_thread_main(&is_main);
  printf("%d: thread level single %d, main thread %d\n", rank, provided == MPI_THREAD_SINGLE,
         is_main);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = -1;
  MPI_Get_library_version(version, &len);
  /* (OpenMPI's resultlen is not strlen of its multi-part string: only "some text") */
  printf("%d: library version given %d\n", rank, len > 0 && strlen(version) > 0);

  /* MPI_Alloc_mem: a buffer of 1000 ints and an empty one, used in an allreduce */
  int* buf = NULL;
  int* empty = NULL;
  int rc = MPI_Alloc_mem(1000 * sizeof(int), MPI_INFO_NULL, &buf);
  int rc0 = MPI_Alloc_mem(0, MPI_INFO_NULL, &empty);
  for (int i = 0; i < 1000; ++i) buf[i] = rank + i;
  MPI_Allreduce(MPI_IN_PLACE, buf, 1000, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  long total = 0;
  for (int i = 0; i < 1000; ++i) total += buf[i];
  printf("%d: alloc_mem rc %d %d, allreduce total %ld\n", rank, rc, rc0, total);
  MPI_Free_mem(buf);
  MPI_Free_mem(empty);

  /* predefined attributes */
  int* v = NULL;
  int flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &v, &flag);
  printf("%d: tag_ub flag %d at least 32767 %d\n", rank, flag, flag && *v >= 32767);
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_WTIME_IS_GLOBAL, &v, &flag);
  if (flag) printf("%d: wtime_is_global %d\n", rank, *v);
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_HOST, &v, &flag);
  printf("%d: host flag %d proc_null %d\n", rank, flag, flag && *v == MPI_PROC_NULL);
  MPI_Attr_get(MPI_COMM_WORLD, MPI_IO, &v, &flag);
  printf("%d: io flag %d any_source %d\n", rank, flag, flag && *v == MPI_ANY_SOURCE);

  /* operators */
  MPI_Op dig;
  MPI_Op_create(digits, 0, &dig);
  int comm_sum = -1, comm_dig = -1;
  MPI_Op_commutative(MPI_SUM, &comm_sum);
  MPI_Op_commutative(dig, &comm_dig);
  printf("%d: commutative sum %d digits %d\n", rank, comm_sum, comm_dig);
  int in[3] = {1, 2, 3}, inout[3] = {4, 5, 6};
  MPI_Reduce_local(in, inout, 3, MPI_INT, MPI_SUM);
  printf("%d: reduce_local sum %d %d %d\n", rank, inout[0], inout[1], inout[2]);
  double din[2] = {rank, -1.5}, dinout[2] = {0.5, -2.5};
  MPI_Reduce_local(din, dinout, 2, MPI_DOUBLE, MPI_MAX);
  printf("%d: reduce_local max %.1f %.1f\n", rank, dinout[0], dinout[1]);
  MPI_Reduce_local(in, inout, 3, MPI_INT, dig);
  printf("%d: reduce_local digits %d %d %d\n", rank, inout[0], inout[1], inout[2]);
  MPI_Reduce_local(in, inout, 0, MPI_INT, MPI_SUM);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int bad = MPI_Reduce_local(din, dinout, 2, MPI_DOUBLE, MPI_BAND);
  int cls = -1;
  MPI_Error_class(bad, &cls);
  printf("%d: reduce_local band on double fails with MPI_ERR_OP %d\n", rank, cls == MPI_ERR_OP);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Op_free(&dig);

  /* Testany / Testsome / Waitsome */
  for (int how = 0; how < 3; ++how) gather_from_all(how, 10 + how);

  MPI_Finalize();
  return 0;
}
