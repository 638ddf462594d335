/* MPI_Reduce for a sum and mean, MPI_Allreduce for the mean everywhere, then the
 * standard deviation, as the reduce/allreduce tutorials do. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  int num_elements_per_proc = argc > 1 ? atoi(argv[1]) : 32;
  MPI_Init(NULL, NULL);
  int world_rank, world_size;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  srand(world_rank + 1);
  float* rand_nums = malloc(sizeof(float) * num_elements_per_proc);
  for (int i = 0; i < num_elements_per_proc; i++) rand_nums[i] = (rand() % 32) / 2.0f;
  float local_sum = 0;
  for (int i = 0; i < num_elements_per_proc; i++) local_sum += rand_nums[i];
  printf("Local sum for process %d - %f, avg = %f\n", world_rank, local_sum, local_sum / num_elements_per_proc);
  float global_sum;
  MPI_Reduce(&local_sum, &global_sum, 1, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (world_rank == 0)
    printf("Total sum = %f, avg = %f\n", global_sum, global_sum / (world_size * num_elements_per_proc));
  MPI_Allreduce(&local_sum, &global_sum, 1, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  float mean = global_sum / (num_elements_per_proc * world_size);
  float local_sq_diff = 0;
  for (int i = 0; i < num_elements_per_proc; i++) local_sq_diff += (rand_nums[i] - mean) * (rand_nums[i] - mean);
  float global_sq_diff;
  MPI_Reduce(&local_sq_diff, &global_sq_diff, 1, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (world_rank == 0) printf("Mean - %f, Standard deviation = %.2f\n", mean,
                              sqrt(global_sq_diff / (num_elements_per_proc * world_size)));
  free(rand_nums);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  return 0;
}
