/* Communicator split into rows of four, and a group of the prime ranks with
 * MPI_Group_incl + MPI_Comm_create_group, as the groups-and-communicators
 * tutorials do. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(NULL, NULL);
  int world_rank, world_size;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  int color = world_rank / 4;
  MPI_Comm row_comm;
  MPI_Comm_split(MPI_COMM_WORLD, color, world_rank, &row_comm);
  int row_rank, row_size;
  MPI_Comm_rank(row_comm, &row_rank);
  MPI_Comm_size(row_comm, &row_size);
  printf("WORLD RANK/SIZE: %d/%d \t ROW RANK/SIZE: %d/%d\n", world_rank, world_size, row_rank, row_size);
  int row_sum;
  MPI_Allreduce(&world_rank, &row_sum, 1, MPI_INT, MPI_SUM, row_comm);
  printf("world rank %d: sum over its row %d\n", world_rank, row_sum);
  MPI_Comm_free(&row_comm);

  MPI_Group world_group;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  const int primes[] = {2, 3, 5, 7, 11, 13};
  int n = 0;
  while (n < 6 && primes[n] < world_size) n++;
  if (n > 0) {
    MPI_Group prime_group;
    MPI_Group_incl(world_group, n, primes, &prime_group);
    MPI_Comm prime_comm;
    MPI_Comm_create_group(MPI_COMM_WORLD, prime_group, 0, &prime_comm);
    int prime_rank = -1, prime_size = -1;
    if (MPI_COMM_NULL != prime_comm) {
      MPI_Comm_rank(prime_comm, &prime_rank);
      MPI_Comm_size(prime_comm, &prime_size);
    }
    printf("WORLD RANK/SIZE: %d/%d \t PRIME RANK/SIZE: %d/%d\n", world_rank, world_size, prime_rank, prime_size);
    MPI_Group_free(&prime_group);
    if (MPI_COMM_NULL != prime_comm) MPI_Comm_free(&prime_comm);
  }
  MPI_Group_free(&world_group);
  MPI_Finalize();
  return 0;
}
