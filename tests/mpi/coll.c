/* Every collective of the MPI layer with a non-zero root where it has one,
 * MPI_IN_PLACE, the v-forms with gaps between the blocks and zero counts, and the
 * MPI_I... forms. Each rank prints what it received; the test compares with OpenMPI. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank, size;

static void print_ints(const char* what, const int* v, int n) {
  printf("rank %d: %s:", rank, what);
  for (int i = 0; i < n; ++i) printf(" %d", v[i]);
  printf("\n");
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int root = size > 1 ? size - 2 : 0; /* not 0, not the last */
  int n = size;
  int* a = calloc(64 * size + 64, sizeof(int));
  int* b = calloc(64 * size + 64, sizeof(int));

  MPI_Barrier(MPI_COMM_WORLD);

  for (int i = 0; i < 4; ++i) a[i] = rank == root ? 7 * i + 1 : -1;
  MPI_Bcast(a, 4, MPI_INT, root, MPI_COMM_WORLD);
  print_ints("bcast", a, 4);
  double d = rank == root ? 2.5 : 0;
  MPI_Bcast(&d, 1, MPI_DOUBLE, root, MPI_COMM_WORLD);
  printf("rank %d: bcast double %g\n", rank, d);
  MPI_Bcast(a, 0, MPI_INT, root, MPI_COMM_WORLD);

  for (int i = 0; i < 3; ++i) a[i] = rank + i;
  memset(b, 0, 3 * sizeof(int));
  MPI_Reduce(a, b, 3, MPI_INT, MPI_SUM, root, MPI_COMM_WORLD);
  if (rank == root) print_ints("reduce sum", b, 3);
  for (int i = 0; i < 3; ++i) b[i] = rank * (i + 1);
  if (rank == root)
    MPI_Reduce(MPI_IN_PLACE, b, 3, MPI_INT, MPI_MAX, root, MPI_COMM_WORLD);
  else
    MPI_Reduce(b, NULL, 3, MPI_INT, MPI_MAX, root, MPI_COMM_WORLD);
  if (rank == root) print_ints("reduce in place max", b, 3);

  long l = rank + 1, lp;
  MPI_Allreduce(&l, &lp, 1, MPI_LONG, MPI_PROD, MPI_COMM_WORLD);
  printf("rank %d: allreduce prod %ld\n", rank, lp);
  double x[2] = {rank * 1.5, -rank};
  MPI_Allreduce(MPI_IN_PLACE, x, 2, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  printf("rank %d: allreduce in place min %g %g\n", rank, x[0], x[1]);

  /* gather / scatter */
  a[0] = 100 + rank;
  a[1] = 200 + rank;
  MPI_Gather(a, 2, MPI_INT, b, 2, MPI_INT, root, MPI_COMM_WORLD);
  if (rank == root) print_ints("gather", b, 2 * n);
  for (int i = 0; i < n; ++i) b[i] = rank == root ? -5 : 10 * i;
  if (rank == root) {
    b[root] = 555;
    MPI_Gather(MPI_IN_PLACE, 1, MPI_INT, b, 1, MPI_INT, root, MPI_COMM_WORLD);
    print_ints("gather in place", b, n);
  } else {
    int v = 10 * rank;
    MPI_Gather(&v, 1, MPI_INT, NULL, 0, MPI_INT, root, MPI_COMM_WORLD);
  }
  for (int i = 0; i < 3 * n; ++i) a[i] = i * 3;
  MPI_Scatter(a, 3, MPI_INT, b, 3, MPI_INT, root, MPI_COMM_WORLD);
  print_ints("scatter", b, 3);
  if (rank == root) {
    for (int i = 0; i < n; ++i) a[i] = 1000 + i;
    MPI_Scatter(a, 1, MPI_INT, MPI_IN_PLACE, 1, MPI_INT, root, MPI_COMM_WORLD);
    printf("rank %d: scatter in place keeps %d\n", rank, a[root]);
  } else {
    int v;
    MPI_Scatter(NULL, 1, MPI_INT, &v, 1, MPI_INT, root, MPI_COMM_WORLD);
    printf("rank %d: scatter in place others get %d\n", rank, v);
  }

  /* allgather / alltoall */
  a[0] = rank * rank;
  MPI_Allgather(a, 1, MPI_INT, b, 1, MPI_INT, MPI_COMM_WORLD);
  print_ints("allgather", b, n);
  for (int i = 0; i < n; ++i) b[i] = i == rank ? -rank : 0;
  MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, 1, MPI_INT, MPI_COMM_WORLD);
  print_ints("allgather in place", b, n);
  for (int i = 0; i < 2 * n; ++i) a[i] = 100 * rank + i;
  MPI_Alltoall(a, 2, MPI_INT, b, 2, MPI_INT, MPI_COMM_WORLD);
  print_ints("alltoall", b, 2 * n);
  for (int i = 0; i < n; ++i) b[i] = 10 * rank + i;
  MPI_Alltoall(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, 1, MPI_INT, MPI_COMM_WORLD);
  print_ints("alltoall in place", b, n);

  /* v-forms: rank p contributes p % 3 ints (some zero), blocks placed with gaps */
  int* counts = malloc(sizeof(int) * n);
  int* displs = malloc(sizeof(int) * n);
  int total = 0;
  for (int p = 0; p < n; ++p) {
    counts[p] = p % 3;
    displs[p] = total + p; /* a gap of p ints before block p */
    total += counts[p] + p;
  }
  for (int i = 0; i < 3; ++i) a[i] = 10 * rank + i;
  for (int i = 0; i < total; ++i) b[i] = -1;
  MPI_Gatherv(a, rank % 3, MPI_INT, b, counts, displs, MPI_INT, root, MPI_COMM_WORLD);
  if (rank == root) print_ints("gatherv", b, total);
  for (int i = 0; i < total; ++i) a[i] = i;
  for (int i = 0; i < 3; ++i) b[i] = -1;
  MPI_Scatterv(a, counts, displs, MPI_INT, b, rank % 3, MPI_INT, root, MPI_COMM_WORLD);
  print_ints("scatterv", b, 3);
  for (int i = 0; i < total; ++i) b[i] = -1;
  MPI_Allgatherv(a + 10, rank % 3, MPI_INT, b, counts, displs, MPI_INT, MPI_COMM_WORLD);
  print_ints("allgatherv", b, total);
  for (int i = 0; i < total; ++i) b[i] = i == displs[rank] || i == displs[rank] + 1 ? 500 + rank : -1;
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, counts, displs, MPI_INT, MPI_COMM_WORLD);
  print_ints("allgatherv in place", b, total);

  /* alltoallv: rank r sends (r + q) % 3 ints to rank q, at gapped displacements */
  int *sc = malloc(sizeof(int) * n), *sd = malloc(sizeof(int) * n), *rc = malloc(sizeof(int) * n),
      *rd = malloc(sizeof(int) * n);
  int st = 0, rt = 0;
  for (int q = 0; q < n; ++q) {
    sc[q] = (rank + q) % 3;
    sd[q] = st;
    st += sc[q] + 1;
    rc[q] = (q + rank) % 3;
    rd[q] = rt;
    rt += rc[q] + 2;
  }
  for (int i = 0; i < st; ++i) a[i] = 1000 * rank + i;
  for (int i = 0; i < rt; ++i) b[i] = -1;
  MPI_Alltoallv(a, sc, sd, MPI_INT, b, rc, rd, MPI_INT, MPI_COMM_WORLD);
  print_ints("alltoallv", b, rt);

  /* reduce_scatter_block / reduce_scatter / scan / exscan */
  for (int i = 0; i < 2 * n; ++i) a[i] = rank + i;
  MPI_Reduce_scatter_block(a, b, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  print_ints("reduce_scatter_block", b, 2);
  for (int i = 0; i < 2 * n; ++i) b[i] = rank * i;
  MPI_Reduce_scatter_block(MPI_IN_PLACE, b, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  print_ints("reduce_scatter_block in place", b, 2);
  int rs_total = 0;
  for (int p = 0; p < n; ++p) {
    counts[p] = (p + 1) % 3;
    rs_total += counts[p];
  }
  for (int i = 0; i < rs_total; ++i) a[i] = i + rank;
  for (int i = 0; i < 2; ++i) b[i] = -1;
  MPI_Reduce_scatter(a, b, counts, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  print_ints("reduce_scatter", b, counts[rank]);
  a[0] = rank + 1;
  a[1] = 2;
  MPI_Scan(a, b, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  print_ints("scan", b, 2);
  b[0] = rank + 1;
  MPI_Scan(MPI_IN_PLACE, b, 1, MPI_INT, MPI_PROD, MPI_COMM_WORLD);
  print_ints("scan in place", b, 1);
  a[0] = rank + 1;
  b[0] = -99;
  MPI_Exscan(a, b, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank > 0) print_ints("exscan", b, 1); /* undefined on rank 0 */
  b[0] = rank + 2;
  MPI_Exscan(MPI_IN_PLACE, b, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank > 0) print_ints("exscan in place", b, 1);

  /* the non-blocking forms */
  MPI_Request rq[8];
  int ib = rank == root ? 77 : 0, ired = -1, iall = -1, iscan = -1;
  int* ig = calloc(n, sizeof(int));
  int* iag = calloc(n, sizeof(int));
  int* iat = calloc(n, sizeof(int));
  int* isend = calloc(n, sizeof(int));
  for (int i = 0; i < n; ++i) isend[i] = rank * 10 + i;
  int one = rank + 1, isc = -1;
  MPI_Ibarrier(MPI_COMM_WORLD, &rq[0]);
  MPI_Ibcast(&ib, 1, MPI_INT, root, MPI_COMM_WORLD, &rq[1]);
  MPI_Ireduce(&one, &ired, 1, MPI_INT, MPI_SUM, root, MPI_COMM_WORLD, &rq[2]);
  MPI_Iallreduce(&one, &iall, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &rq[3]);
  MPI_Igather(&one, 1, MPI_INT, ig, 1, MPI_INT, root, MPI_COMM_WORLD, &rq[4]);
  MPI_Iallgather(&one, 1, MPI_INT, iag, 1, MPI_INT, MPI_COMM_WORLD, &rq[5]);
  MPI_Ialltoall(isend, 1, MPI_INT, iat, 1, MPI_INT, MPI_COMM_WORLD, &rq[6]);
  MPI_Iscan(&one, &iscan, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &rq[7]);
  MPI_Waitall(8, rq, MPI_STATUSES_IGNORE);
  MPI_Request r1, r2;
  MPI_Iscatter(isend, 1, MPI_INT, &isc, 1, MPI_INT, root, MPI_COMM_WORLD, &r1);
  MPI_Wait(&r1, MPI_STATUS_IGNORE);
  int* irsb = calloc(n, sizeof(int));
  int irs = -1;
  MPI_Ireduce_scatter_block(isend, &irs, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &r2);
  MPI_Wait(&r2, MPI_STATUS_IGNORE);
  printf("rank %d: ibcast %d iallreduce %d iscan %d iscatter %d ireduce_scatter_block %d\n", rank, ib,
         iall, iscan, isc, irs);
  if (rank == root) {
    printf("rank %d: ireduce %d\n", rank, ired);
    print_ints("igather", ig, n);
  }
  print_ints("iallgather", iag, n);
  print_ints("ialltoall", iat, n);
  free(irsb);

  MPI_Finalize();
  return 0;
}
