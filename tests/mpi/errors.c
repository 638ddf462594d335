/* Errors and the environment: MPI_ERRORS_RETURN with MPI_Comm_set_errhandler, the
 * error class of each kind of bad argument (rank, tag, count, root, communicator,
 * datatype, operator), MPI_Error_string / MPI_Error_class, and the environment calls
 * (Init_thread, Query_thread, Is_thread_main, Initialized, Finalized, Wtime, Wtick,
 * Get_version, Get_processor_name, Get_library_version). */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

static int rank, size;

static const char* cls_name(int err) {
  int c;
  if (err == MPI_SUCCESS) return "MPI_SUCCESS";
  MPI_Error_class(err, &c);
  switch (c) {
    case MPI_ERR_RANK: return "MPI_ERR_RANK";
    case MPI_ERR_TAG: return "MPI_ERR_TAG";
    case MPI_ERR_COUNT: return "MPI_ERR_COUNT";
    case MPI_ERR_ROOT: return "MPI_ERR_ROOT";
    case MPI_ERR_COMM: return "MPI_ERR_COMM";
    case MPI_ERR_TYPE: return "MPI_ERR_TYPE";
    case MPI_ERR_OP: return "MPI_ERR_OP";
    case MPI_ERR_ARG: return "MPI_ERR_ARG";
    case MPI_ERR_TRUNCATE: return "MPI_ERR_TRUNCATE";
    default: return "another class";
  }
}

int main(int argc, char** argv) {
  int flag, provided;
  MPI_Initialized(&flag);
  printf("initialized before: %d\n", flag); /* every rank prints it: sorted alike */
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Initialized(&flag);
  int q, main_thread;
  MPI_Query_thread(&q);
  MPI_Is_thread_main(&main_thread);
  printf("rank %d: initialized %d provided %s query %s main %d\n", rank, flag,
         provided == MPI_THREAD_FUNNELED ? "FUNNELED" : "?", q == provided ? "same" : "?", main_thread);
  int v, sv;
  MPI_Get_version(&v, &sv);
  char name[MPI_MAX_PROCESSOR_NAME], lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len, liblen;
  MPI_Get_processor_name(name, &len);
  MPI_Get_library_version(lib, &liblen);
  double t0 = MPI_Wtime(), t1 = MPI_Wtime();
  printf("rank %d: version %d.%d name %s lib %s wtime %s wtick %s\n", rank, v, sv,
         len > 0 && (int)strlen(name) == len ? "ok" : "?", liblen > 0 ? "ok" : "?", t1 >= t0 ? "ok" : "?",
         MPI_Wtick() > 0 && MPI_Wtick() < 1 ? "ok" : "?");

  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Errhandler h;
  MPI_Comm_get_errhandler(MPI_COMM_WORLD, &h);
  printf("rank %d: errhandler %s\n", rank, h == MPI_ERRORS_RETURN ? "MPI_ERRORS_RETURN" : "?");
  int x = 1, y;
  printf("rank %d: send to rank %d: %s\n", rank, size, cls_name(MPI_Send(&x, 1, MPI_INT, size, 0, MPI_COMM_WORLD)));
  printf("rank %d: send to rank -7: %s\n", rank, cls_name(MPI_Send(&x, 1, MPI_INT, -7, 0, MPI_COMM_WORLD)));
  printf("rank %d: negative tag: %s\n", rank, cls_name(MPI_Send(&x, 1, MPI_INT, 0, -5, MPI_COMM_WORLD)));
  printf("rank %d: negative count: %s\n", rank, cls_name(MPI_Send(&x, -1, MPI_INT, 0, 0, MPI_COMM_WORLD)));
  printf("rank %d: null type: %s\n", rank, cls_name(MPI_Send(&x, 1, MPI_DATATYPE_NULL, 0, 0, MPI_COMM_WORLD)));
  printf("rank %d: recv from rank %d: %s\n", rank, size + 3,
         cls_name(MPI_Recv(&x, 1, MPI_INT, size + 3, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE)));
  printf("rank %d: bcast root %d: %s\n", rank, size, cls_name(MPI_Bcast(&x, 1, MPI_INT, size, MPI_COMM_WORLD)));
  printf("rank %d: reduce root -1: %s\n", rank,
         cls_name(MPI_Reduce(&x, &y, 1, MPI_INT, MPI_SUM, -1, MPI_COMM_WORLD)));
  double d = 1, e;
  printf("rank %d: band on double: %s\n", rank,
         cls_name(MPI_Allreduce(&d, &e, 1, MPI_DOUBLE, MPI_BAND, MPI_COMM_WORLD)));
  printf("rank %d: null op: %s\n", rank, cls_name(MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_OP_NULL, MPI_COMM_WORLD)));
  printf("rank %d: minloc on int: %s\n", rank, cls_name(MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_MINLOC, MPI_COMM_WORLD)));
  MPI_Datatype t = MPI_INT;
  printf("rank %d: free MPI_INT: %s\n", rank, cls_name(MPI_Type_free(&t)));
  int cls;
  MPI_Error_class(MPI_ERR_RANK, &cls);
  char msg[MPI_MAX_ERROR_STRING];
  int mlen;
  MPI_Error_string(MPI_ERR_RANK, msg, &mlen);
  printf("rank %d: class of MPI_ERR_RANK %s, string %s\n", rank, cls == MPI_ERR_RANK ? "itself" : "?",
         mlen > 0 && (int)strlen(msg) == mlen ? "ok" : "?");
  MPI_Error_string(MPI_SUCCESS, msg, &mlen);
  printf("rank %d: success string %s\n", rank, mlen > 0 ? "ok" : "?");
  /* still working after the errors */
  int sum;
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("rank %d: allreduce after errors %d\n", rank, sum);
  MPI_Finalize();
  MPI_Finalized(&flag);
  printf("rank %d: finalized %d\n", rank, flag);
  return 0;
}
