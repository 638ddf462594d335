/* Parallel binning (a bucket-sort step): each process draws numbers in [0, 1000),
 * sends every number to the process owning its bin with MPI_Alltoall (counts) and
 * MPI_Alltoallv (data), and prints the numbers it owns, sorted. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) { return *(const int*)a - *(const int*)b; }

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int n = 20;
  int values[20];
  srand(rank * 31 + 7);
  for (int i = 0; i < n; ++i) values[i] = rand() % 1000;
  const int width = (1000 + size - 1) / size;
  int* send_counts = calloc(size, sizeof(int));
  for (int i = 0; i < n; ++i) send_counts[values[i] / width]++;
  int* send_displs = calloc(size, sizeof(int));
  for (int p = 1; p < size; ++p) send_displs[p] = send_displs[p - 1] + send_counts[p - 1];
  int* fill = calloc(size, sizeof(int));
  int* send_buf = malloc(sizeof(int) * n);
  for (int i = 0; i < n; ++i) {
    int b = values[i] / width;
    send_buf[send_displs[b] + fill[b]++] = values[i];
  }
  int* recv_counts = malloc(sizeof(int) * size);
  MPI_Alltoall(send_counts, 1, MPI_INT, recv_counts, 1, MPI_INT, MPI_COMM_WORLD);
  int* recv_displs = calloc(size, sizeof(int));
  int total = recv_counts[0];
  for (int p = 1; p < size; ++p) {
    recv_displs[p] = recv_displs[p - 1] + recv_counts[p - 1];
    total += recv_counts[p];
  }
  int* recv_buf = malloc(sizeof(int) * (total + 1));
  MPI_Alltoallv(send_buf, send_counts, send_displs, MPI_INT, recv_buf, recv_counts, recv_displs, MPI_INT,
                MPI_COMM_WORLD);
  qsort(recv_buf, total, sizeof(int), cmp);
  printf("rank %d owns [%d, %d): %d numbers:", rank, rank * width, (rank + 1) * width, total);
  for (int i = 0; i < total; ++i) printf(" %d", recv_buf[i]);
  printf("\n");
  int grand;
  MPI_Reduce(&total, &grand, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank == 0) printf("total %d numbers binned\n", grand);
  MPI_Finalize();
  return 0;
}
