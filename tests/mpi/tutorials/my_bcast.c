/* A broadcast written with MPI_Send / MPI_Recv, checked against MPI_Bcast. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

void my_bcast(void* data, int count, MPI_Datatype datatype, int root, MPI_Comm communicator) {
  int world_rank, world_size;
  MPI_Comm_rank(communicator, &world_rank);
  MPI_Comm_size(communicator, &world_size);
  if (world_rank == root) {
    for (int i = 0; i < world_size; i++)
      if (i != world_rank) MPI_Send(data, count, datatype, i, 0, communicator);
  } else {
    MPI_Recv(data, count, datatype, root, 0, communicator, MPI_STATUS_IGNORE);
  }
}

int main(int argc, char** argv) {
  MPI_Init(NULL, NULL);
  int world_rank, world_size;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  const int num_elements = 1000, root = world_size - 1;
  int* data = malloc(sizeof(int) * num_elements);
  int* data2 = malloc(sizeof(int) * num_elements);
  for (int i = 0; i < num_elements; ++i) data[i] = data2[i] = world_rank == root ? i * 2 + 1 : 0;
  double t = -MPI_Wtime();
  my_bcast(data, num_elements, MPI_INT, root, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  t += MPI_Wtime();
  MPI_Bcast(data2, num_elements, MPI_INT, root, MPI_COMM_WORLD);
  long s1 = 0, s2 = 0;
  for (int i = 0; i < num_elements; ++i) s1 += data[i], s2 += data2[i];
  printf("rank %d: my_bcast sum %ld, MPI_Bcast sum %ld\n", world_rank, s1, s2);
  if (world_rank == 0) fprintf(stderr, "my_bcast took %f s\n", t);
  free(data);
  free(data2);
  MPI_Finalize();
  return 0;
}
