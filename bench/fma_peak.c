/* fma_peak.c: prints the machine's measured fp32 FMA peak (GFLOP/s) for N threads
 * (independent vector FMA chains in registers, no memory traffic) and, where the CPU has
 * AVX512-BF16, the bf16 dot-product peak (vdpbf16ps chains). They are the MFU denominators
 * of bench/train_bench.c (fp32 and --precision bf16). Usage: fma_peak [threads] */
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

int main(int argc, char **argv) {
    int t = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    if (t < 1) t = 1;
    printf("{\"threads\": %d, \"fp32_fma_peak_gflops\": %.1f, \"bf16_dp_peak_gflops\": %.1f, \"bf16_path\": \"%s\"}\n", t,
           cpt_bench_fma_peak_impl(t), cpt_bench_bf16_peak_impl(t), cpt_bf16_isa_name(cpt_cpu_bf16_isa()));
    return 0;
}
