/* fma_peak.c: prints the machine's measured fp32 FMA peak (GFLOP/s) for N threads
 * (independent vector FMA chains in registers, no memory traffic). It is the MFU
 * denominator of bench/train_bench.c. Usage: fma_peak [threads] */
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

int main(int argc, char **argv) {
    int t = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    if (t < 1) t = 1;
    printf("{\"threads\": %d, \"fp32_fma_peak_gflops\": %.1f}\n", t, cpt_bench_fma_peak_impl(t));
    return 0;
}
