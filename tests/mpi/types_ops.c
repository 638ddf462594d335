/* Datatypes and reduction operators: the predefined C types' sizes, reductions over
 * each of them, the logical and bitwise operators, MPI_MINLOC / MPI_MAXLOC with the
 * pair types, MPI_Type_contiguous + commit / free, and MPI_Op_create user operators,
 * commutative and not (a non-commutative one shows the order of the operands). */
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int rank, size;

/* 2x2 matrix product (non-commutative): inout = in x inout */
typedef struct { long m[4]; } Mat;
static void matmul(void* in, void* inout, int* len, MPI_Datatype* t) {
  (void)t;
  Mat* a = in;
  Mat* b = inout;
  for (int i = 0; i < *len; ++i) {
    Mat r;
    r.m[0] = a[i].m[0] * b[i].m[0] + a[i].m[1] * b[i].m[2];
    r.m[1] = a[i].m[0] * b[i].m[1] + a[i].m[1] * b[i].m[3];
    r.m[2] = a[i].m[2] * b[i].m[0] + a[i].m[3] * b[i].m[2];
    r.m[3] = a[i].m[2] * b[i].m[1] + a[i].m[3] * b[i].m[3];
    b[i] = r;
  }
}

/* digits: inout = in * 10 + inout (non-commutative, associative on the digit string) */
static void sum_abs(void* in, void* inout, int* len, MPI_Datatype* t) {
  (void)t;
  int* a = in;
  int* b = inout;
  for (int i = 0; i < *len; ++i) b[i] = (a[i] < 0 ? -a[i] : a[i]) + (b[i] < 0 ? -b[i] : b[i]);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int root = size / 2;

  if (rank == 0) {
    const MPI_Datatype types[] = {MPI_CHAR, MPI_SIGNED_CHAR, MPI_UNSIGNED_CHAR, MPI_BYTE, MPI_SHORT,
                                  MPI_UNSIGNED_SHORT, MPI_INT, MPI_UNSIGNED, MPI_LONG, MPI_UNSIGNED_LONG,
                                  MPI_LONG_LONG, MPI_UNSIGNED_LONG_LONG, MPI_FLOAT, MPI_DOUBLE,
                                  MPI_LONG_DOUBLE, MPI_C_BOOL, MPI_WCHAR, MPI_INT8_T, MPI_INT16_T,
                                  MPI_INT32_T, MPI_INT64_T, MPI_UINT8_T, MPI_UINT16_T, MPI_UINT32_T,
                                  MPI_UINT64_T, MPI_AINT, MPI_OFFSET, MPI_FLOAT_INT, MPI_DOUBLE_INT,
                                  MPI_LONG_INT, MPI_2INT, MPI_SHORT_INT, MPI_LONG_DOUBLE_INT};
    printf("sizes:");
    for (unsigned i = 0; i < sizeof types / sizeof types[0]; ++i) {
      int s;
      MPI_Type_size(types[i], &s);
      printf(" %d", s);
    }
    printf("\n");
  }

  /* one reduction per type family */
  {
    signed char c = (signed char)(rank + 1), cs;
    unsigned char uc = (unsigned char)(rank * 3), ucm;
    short sh = (short)(-rank), shm;
    unsigned short us = (unsigned short)(rank + 10), uss;
    unsigned u = 1u << rank, ub;
    long long ll = 1000000000000LL * rank, lls;
    unsigned long long ull = rank + 1, ullp;
    float f = 0.5f * rank, fm;
    long double ld = rank * 0.25L, lds;
    int8_t i8 = (int8_t)rank, i8s;
    uint64_t u64 = (uint64_t)rank << 40, u64s;
    MPI_Allreduce(&c, &cs, 1, MPI_SIGNED_CHAR, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&uc, &ucm, 1, MPI_UNSIGNED_CHAR, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&sh, &shm, 1, MPI_SHORT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&us, &uss, 1, MPI_UNSIGNED_SHORT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&u, &ub, 1, MPI_UNSIGNED, MPI_BOR, MPI_COMM_WORLD);
    MPI_Allreduce(&ll, &lls, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&ull, &ullp, 1, MPI_UNSIGNED_LONG_LONG, MPI_PROD, MPI_COMM_WORLD);
    MPI_Allreduce(&f, &fm, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&ld, &lds, 1, MPI_LONG_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&i8, &i8s, 1, MPI_INT8_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&u64, &u64s, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d: %d %u %d %u %u %lld %llu %g %Lg %d %llu\n", rank, cs, ucm, shm, uss, ub, lls, ullp,
           (double)fm, lds, i8s, (unsigned long long)u64s);
  }
  /* logical and bitwise */
  {
    int v[6] = {rank % 2, rank > 0, rank % 2, 0xF0 | rank, 1 << (rank % 8), rank};
    int land, lor, lxor, band, bor, bxor;
    MPI_Allreduce(&v[0], &land, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    MPI_Allreduce(&v[1], &lor, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    MPI_Allreduce(&v[2], &lxor, 1, MPI_INT, MPI_LXOR, MPI_COMM_WORLD);
    MPI_Allreduce(&v[3], &band, 1, MPI_INT, MPI_BAND, MPI_COMM_WORLD);
    MPI_Allreduce(&v[4], &bor, 1, MPI_INT, MPI_BOR, MPI_COMM_WORLD);
    MPI_Allreduce(&v[5], &bxor, 1, MPI_INT, MPI_BXOR, MPI_COMM_WORLD);
    bool bl = rank != 1, bland, blor;
    MPI_Allreduce(&bl, &bland, 1, MPI_C_BOOL, MPI_LAND, MPI_COMM_WORLD);
    MPI_Allreduce(&bl, &blor, 1, MPI_C_BOOL, MPI_LOR, MPI_COMM_WORLD);
    unsigned char by = (unsigned char)(0x0F << (rank % 4)), byx;
    MPI_Allreduce(&by, &byx, 1, MPI_BYTE, MPI_BXOR, MPI_COMM_WORLD);
    printf("rank %d: land %d lor %d lxor %d band %x bor %x bxor %d bool %d %d byte %x\n", rank, land, lor,
           lxor, band, bor, bxor, bland, blor, byx);
  }
  /* MINLOC / MAXLOC: the value and the lowest rank holding it */
  {
    struct { double v; int i; } din = {(double)((rank * 7) % 5), rank}, dmin, dmax;
    struct { int v; int i; } iin = {rank % 3, rank}, imin, imax;
    struct { float v; int i; } fin = {-(float)(rank % 2), rank}, fmin;
    struct { long v; int i; } lin = {(long)(rank / 2), rank}, lmax;
    struct { short v; int i; } sin_ = {(short)(5 - rank), rank}, smin;
    MPI_Allreduce(&din, &dmin, 1, MPI_DOUBLE_INT, MPI_MINLOC, MPI_COMM_WORLD);
    MPI_Allreduce(&din, &dmax, 1, MPI_DOUBLE_INT, MPI_MAXLOC, MPI_COMM_WORLD);
    MPI_Allreduce(&iin, &imin, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD);
    MPI_Allreduce(&iin, &imax, 1, MPI_2INT, MPI_MAXLOC, MPI_COMM_WORLD);
    MPI_Allreduce(&fin, &fmin, 1, MPI_FLOAT_INT, MPI_MINLOC, MPI_COMM_WORLD);
    MPI_Allreduce(&lin, &lmax, 1, MPI_LONG_INT, MPI_MAXLOC, MPI_COMM_WORLD);
    MPI_Reduce(&sin_, &smin, 1, MPI_SHORT_INT, MPI_MINLOC, root, MPI_COMM_WORLD);
    printf("rank %d: minloc %g@%d maxloc %g@%d 2int %d@%d %d@%d float %g@%d long %ld@%d\n", rank, dmin.v,
           dmin.i, dmax.v, dmax.i, imin.v, imin.i, imax.v, imax.i, (double)fmin.v, fmin.i, lmax.v, lmax.i);
    if (rank == root) printf("rank %d: short minloc %d@%d\n", rank, smin.v, smin.i);
  }
  /* a contiguous type of 3 ints: sent, received, reduced element-wise, freed */
  {
    MPI_Datatype tri;
    MPI_Type_contiguous(3, MPI_INT, &tri);
    MPI_Type_commit(&tri);
    int s;
    MPI_Type_size(tri, &s);
    int v[6] = {rank, 2 * rank, 3 * rank, 1, 1, 1}, r[6];
    MPI_Allgather(v, 1, tri, r, 1, tri, MPI_COMM_SELF);
    MPI_Aint lb, extent;
    MPI_Type_get_extent(tri, &lb, &extent);
    printf("rank %d: contiguous size %d extent %ld self allgather %d %d %d\n", rank, s, (long)extent, r[0], r[1], r[2]);
    int g[3] = {-1, -1, -1};
    if (rank == root) g[0] = 4, g[1] = 5, g[2] = 6;
    MPI_Bcast(g, 1, tri, root, MPI_COMM_WORLD);
    printf("rank %d: contiguous bcast %d %d %d\n", rank, g[0], g[1], g[2]);
    MPI_Type_free(&tri);
    printf("rank %d: freed %s\n", rank, tri == MPI_DATATYPE_NULL ? "MPI_DATATYPE_NULL" : "?");
  }
  /* user operators */
  {
    MPI_Op mat_op, abs_op;
    MPI_Op_create(matmul, 0, &mat_op);
    MPI_Op_create(sum_abs, 1, &abs_op);
    Mat m = {{1, rank + 1, 0, 1}}, prod;
    if (rank % 2) m.m[2] = 1, m.m[1] = 0; /* alternating lower and upper triangular: order matters */
    MPI_Datatype mt;
    MPI_Type_contiguous(4, MPI_LONG, &mt);
    MPI_Type_commit(&mt);
    MPI_Allreduce(&m, &prod, 1, mt, mat_op, MPI_COMM_WORLD);
    printf("rank %d: matrix product %ld %ld %ld %ld\n", rank, prod.m[0], prod.m[1], prod.m[2], prod.m[3]);
    MPI_Reduce(&m, &prod, 1, mt, mat_op, root, MPI_COMM_WORLD);
    if (rank == root) printf("rank %d: matrix reduce %ld %ld %ld %ld\n", rank, prod.m[0], prod.m[1], prod.m[2], prod.m[3]);
    Mat sc;
    MPI_Scan(&m, &sc, 1, mt, mat_op, MPI_COMM_WORLD);
    printf("rank %d: matrix scan %ld %ld %ld %ld\n", rank, sc.m[0], sc.m[1], sc.m[2], sc.m[3]);
    MPI_Exscan(&m, &sc, 1, mt, mat_op, MPI_COMM_WORLD);
    if (rank > 0) printf("rank %d: matrix exscan %ld %ld %ld %ld\n", rank, sc.m[0], sc.m[1], sc.m[2], sc.m[3]);
    int a[3] = {-rank, rank, -1}, r[3];
    MPI_Allreduce(a, r, 3, MPI_INT, abs_op, MPI_COMM_WORLD);
    printf("rank %d: user commutative %d %d %d\n", rank, r[0], r[1], r[2]);
    MPI_Type_free(&mt);
    MPI_Op_free(&mat_op);
    MPI_Op_free(&abs_op);
  }
  MPI_Finalize();
  return 0;
}
