/* Communicators and groups: MPI_Comm_dup (its own message space), MPI_Comm_split
 * (colors, reversed keys, MPI_UNDEFINED), MPI_Comm_group, MPI_Group_incl / excl /
 * translate_ranks / free, MPI_Comm_create, MPI_Comm_create_group (only the members
 * call it), MPI_Comm_compare, names, MPI_COMM_SELF, collectives and point to point on
 * the new communicators, MPI_Comm_free. */
#include <mpi.h>
#include <stdio.h>

static int rank, size;

static const char* cmp_name(int r) {
  return r == MPI_IDENT ? "IDENT" : r == MPI_CONGRUENT ? "CONGRUENT" : r == MPI_SIMILAR ? "SIMILAR" : "UNEQUAL";
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  /* dup: a message sent on the dup is not received on the world, and the reverse */
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  int r, s, c;
  MPI_Comm_rank(dup, &r);
  MPI_Comm_size(dup, &s);
  MPI_Comm_compare(MPI_COMM_WORLD, dup, &c);
  printf("rank %d: dup rank %d size %d %s\n", rank, r, s, cmp_name(c));
  MPI_Comm_compare(MPI_COMM_WORLD, MPI_COMM_WORLD, &c);
  printf("rank %d: world vs world %s\n", rank, cmp_name(c));
  if (size >= 2) {
    if (rank == 0) {
      int a = 1, b = 2;
      MPI_Send(&a, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
      MPI_Send(&b, 1, MPI_INT, 1, 0, dup);
    } else if (rank == 1) {
      int a, b;
      MPI_Recv(&b, 1, MPI_INT, 0, 0, dup, MPI_STATUS_IGNORE);
      MPI_Recv(&a, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      printf("rank %d: world got %d, dup got %d\n", rank, a, b);
    }
  }

  /* split: even and odd ranks, ranked in reverse; the last rank joins none */
  MPI_Comm half;
  const int color = rank == size - 1 && size > 2 ? MPI_UNDEFINED : rank % 2;
  MPI_Comm_split(MPI_COMM_WORLD, color, size - rank, &half);
  if (half == MPI_COMM_NULL) {
    printf("rank %d: split: MPI_COMM_NULL\n", rank);
  } else {
    int hr, hs, sum;
    MPI_Comm_rank(half, &hr);
    MPI_Comm_size(half, &hs);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, half);
    int first = rank;
    MPI_Bcast(&first, 1, MPI_INT, 0, half);
    printf("rank %d: split color %d: rank %d of %d, sum of world ranks %d, its rank 0 is %d\n", rank, color,
           hr, hs, sum, first);
    /* a ring on the sub-communicator, with tags */
    int next = (hr + 1) % hs, prev = (hr + hs - 1) % hs, got = -1;
    MPI_Sendrecv(&rank, 1, MPI_INT, next, 3, &got, 1, MPI_INT, prev, 3, half, MPI_STATUS_IGNORE);
    printf("rank %d: split ring got world rank %d\n", rank, got);
    MPI_Comm_compare(MPI_COMM_WORLD, half, &c);
    printf("rank %d: world vs split %s\n", rank, cmp_name(c));
    /* a split of the split */
    MPI_Comm quarter;
    MPI_Comm_split(half, hr / 2, hr, &quarter);
    int qr, qs;
    MPI_Comm_rank(quarter, &qr);
    MPI_Comm_size(quarter, &qs);
    printf("rank %d: split of split: rank %d of %d\n", rank, qr, qs);
    MPI_Comm_free(&quarter);
    MPI_Comm_free(&half);
    printf("rank %d: freed %s\n", rank, half == MPI_COMM_NULL ? "MPI_COMM_NULL" : "?");
  }

  /* groups: the even ranks, then the odd ranks, translated */
  MPI_Group world_group, evens, odds;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  int ranks[64], ne = 0, no = 0, odd_ranks[64];
  for (int i = 0; i < size; i += 2) ranks[ne++] = i;
  for (int i = 1; i < size; i += 2) odd_ranks[no++] = i;
  MPI_Group_incl(world_group, ne, ranks, &evens);
  MPI_Group_excl(world_group, ne, ranks, &odds);
  int gs, gr;
  MPI_Group_size(evens, &gs);
  MPI_Group_rank(evens, &gr);
  printf("rank %d: evens size %d my rank %s%d\n", rank, gs, gr == MPI_UNDEFINED ? "UNDEFINED " : "",
         gr == MPI_UNDEFINED ? 0 : gr);
  int trans[64];
  MPI_Group_translate_ranks(odds, no, (int[]){0, 1, 2, 3, 4, 5, 6, 7}, world_group, trans);
  if (rank == 0) {
    printf("odds in world:");
    for (int i = 0; i < no; ++i) printf(" %d", trans[i]);
    printf(" (expected");
    for (int i = 0; i < no; ++i) printf(" %d", odd_ranks[i]);
    printf(")\n");
  }

  /* MPI_Comm_create over the world: the evens get a communicator, the odds MPI_COMM_NULL */
  MPI_Comm even_comm;
  MPI_Comm_create(MPI_COMM_WORLD, evens, &even_comm);
  if (even_comm != MPI_COMM_NULL) {
    int er, x = rank * 10, mx;
    MPI_Comm_rank(even_comm, &er);
    MPI_Allreduce(&x, &mx, 1, MPI_INT, MPI_MAX, even_comm);
    printf("rank %d: create: even rank %d, max %d\n", rank, er, mx);
    MPI_Comm_free(&even_comm);
  } else {
    printf("rank %d: create: MPI_COMM_NULL\n", rank);
  }

  /* MPI_Comm_create_group: called by the odd ranks only, in reverse order */
  if (rank % 2 == 1) {
    int rev[64];
    for (int i = 0; i < no; ++i) rev[i] = odd_ranks[no - 1 - i];
    MPI_Group rodds;
    MPI_Group_incl(world_group, no, rev, &rodds);
    MPI_Comm oc;
    MPI_Comm_create_group(MPI_COMM_WORLD, rodds, 7, &oc);
    int orank, osize, sum;
    MPI_Comm_rank(oc, &orank);
    MPI_Comm_size(oc, &osize);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, oc);
    int* all = (int[64]){0};
    MPI_Gather(&rank, 1, MPI_INT, all, 1, MPI_INT, 0, oc);
    printf("rank %d: create_group: rank %d of %d, sum %d\n", rank, orank, osize, sum);
    if (orank == 0) {
      printf("rank %d: create_group members:", rank);
      for (int i = 0; i < osize; ++i) printf(" %d", all[i]);
      printf("\n");
    }
    MPI_Comm_free(&oc);
    MPI_Group_free(&rodds);
  }

  /* MPI_COMM_SELF */
  int sr, ss, y = rank + 5, ys;
  MPI_Comm_rank(MPI_COMM_SELF, &sr);
  MPI_Comm_size(MPI_COMM_SELF, &ss);
  MPI_Allreduce(&y, &ys, 1, MPI_INT, MPI_SUM, MPI_COMM_SELF);
  MPI_Bcast(&y, 1, MPI_INT, 0, MPI_COMM_SELF);
  MPI_Barrier(MPI_COMM_SELF);
  printf("rank %d: self rank %d size %d allreduce %d\n", rank, sr, ss, ys);

  char name[MPI_MAX_OBJECT_NAME];
  int len;
  MPI_Comm_get_name(MPI_COMM_WORLD, name, &len);
  printf("rank %d: world name %s\n", rank, name);
  MPI_Comm_set_name(dup, "my dup");
  MPI_Comm_get_name(dup, name, &len);
  printf("rank %d: dup name %s (%d)\n", rank, name, len);

  MPI_Group_free(&evens);
  MPI_Group_free(&odds);
  MPI_Group_free(&world_group);
  printf("rank %d: group freed %s\n", rank, world_group == MPI_GROUP_NULL ? "MPI_GROUP_NULL" : "?");
  MPI_Comm_free(&dup);
  MPI_Finalize();
  return 0;
}
