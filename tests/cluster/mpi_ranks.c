/* MPI program of the cluster tests: every rank prints the host it runs on,
 * then all ranks sum their rank numbers with MPI_Allreduce and rank 0 checks
 * the sum against size * (size - 1) / 2. A run that prints
 * "rhtex-allreduce ok" had every rank in one MPI world (ranks started as
 * singletons would each see size 1). Each rank also prints the Slurm step
 * it runs in ("none" outside a step), to show srun started it. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank = 0;
    int size = 0;
    long sum = 0;
    long mine = 0;
    char host[256] = {0};
    const char *step = getenv("SLURM_STEP_ID");

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (gethostname(host, sizeof host - 1) != 0) {
        snprintf(host, sizeof host, "unknown");
    }
    printf("rhtex-rank %d of %d on %s step %s\n", rank, size, host, step ? step : "none");
    fflush(stdout);

    mine = rank;
    MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        long expected = (long)size * (size - 1) / 2;
        if (sum == expected) {
            printf("rhtex-allreduce ok size %d sum %ld\n", size, sum);
        } else {
            printf("rhtex-allreduce WRONG size %d sum %ld expected %ld\n", size, sum, expected);
        }
        fflush(stdout);
    }
    MPI_Finalize();
    return sum == (long)size * (size - 1) / 2 ? 0 : 1;
}
