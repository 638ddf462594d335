/* The receiver does not know the size: it probes, sizes a buffer, then receives. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(NULL, NULL);
  int world_size, world_rank;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  if (world_size != 2) {
    fprintf(stderr, "Must use two processes for this example\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  int number_amount;
  if (world_rank == 0) {
    const int MAX_NUMBERS = 100;
    int numbers[100];
    srand(777);
    number_amount = (rand() / (float)RAND_MAX) * MAX_NUMBERS;
    for (int i = 0; i < number_amount; ++i) numbers[i] = 3 * i;
    MPI_Send(numbers, number_amount, MPI_INT, 1, 0, MPI_COMM_WORLD);
    printf("0 sent %d numbers to 1\n", number_amount);
  } else if (world_rank == 1) {
    MPI_Status status;
    MPI_Probe(0, 0, MPI_COMM_WORLD, &status);
    MPI_Get_count(&status, MPI_INT, &number_amount);
    int* number_buf = (int*)malloc(sizeof(int) * number_amount);
    MPI_Recv(number_buf, number_amount, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    long sum = 0;
    for (int i = 0; i < number_amount; ++i) sum += number_buf[i];
    printf("1 dynamically received %d numbers from 0 (sum %ld).\n", number_amount, sum);
    free(number_buf);
  }
  MPI_Finalize();
  return 0;
}
