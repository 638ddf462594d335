/* Scatter random numbers, average them per process, gather the averages (and
 * MPI_Allgather them in the second part), as the scatter/gather tutorials do. */
#include <assert.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

float* create_rand_nums(int num_elements) {
  float* rand_nums = (float*)malloc(sizeof(float) * num_elements);
  for (int i = 0; i < num_elements; i++) rand_nums[i] = (rand() % 64) / 4.0f; /* exact sums */
  return rand_nums;
}

float compute_avg(float* array, int num_elements) {
  float sum = 0.f;
  for (int i = 0; i < num_elements; i++) sum += array[i];
  return sum / num_elements;
}

int main(int argc, char** argv) {
  int num_elements_per_proc = argc > 1 ? atoi(argv[1]) : 16;
  srand(2024);
  MPI_Init(NULL, NULL);
  int world_rank, world_size;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  float* rand_nums = NULL;
  if (world_rank == 0) rand_nums = create_rand_nums(num_elements_per_proc * world_size);
  float* sub_rand_nums = (float*)malloc(sizeof(float) * num_elements_per_proc);
  assert(sub_rand_nums != NULL);
  MPI_Scatter(rand_nums, num_elements_per_proc, MPI_FLOAT, sub_rand_nums, num_elements_per_proc, MPI_FLOAT, 0,
              MPI_COMM_WORLD);
  float sub_avg = compute_avg(sub_rand_nums, num_elements_per_proc);
  float* sub_avgs = NULL;
  if (world_rank == 0) sub_avgs = (float*)malloc(sizeof(float) * world_size);
  MPI_Gather(&sub_avg, 1, MPI_FLOAT, sub_avgs, 1, MPI_FLOAT, 0, MPI_COMM_WORLD);
  if (world_rank == 0) {
    float avg = compute_avg(sub_avgs, world_size);
    printf("Avg of all elements is %f\n", avg);
    float original_data_avg = compute_avg(rand_nums, num_elements_per_proc * world_size);
    printf("Avg computed across original data is %f\n", original_data_avg);
  }
  float* all_avgs = (float*)malloc(sizeof(float) * world_size);
  MPI_Allgather(&sub_avg, 1, MPI_FLOAT, all_avgs, 1, MPI_FLOAT, MPI_COMM_WORLD);
  printf("Avg of all elements from proc %d is %f\n", world_rank, compute_avg(all_avgs, world_size));
  if (world_rank == 0) {
    free(rand_nums);
    free(sub_avgs);
  }
  free(all_avgs);
  free(sub_rand_nums);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  return 0;
}
