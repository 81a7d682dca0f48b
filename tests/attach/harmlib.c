/* Native work for the do-no-harm attach tests: a loop whose state lives in vector registers
 * (AVX when compiled with -mavx2, SSE otherwise), so an injector that does not restore the
 * thread's extended register state changes the result. Deterministic: the same n gives the
 * same bits on the same machine. */
typedef double v4d __attribute__((vector_size(32)));

double harm_vector_work(long n) {
    v4d acc = {0.0, 0.0, 0.0, 0.0};
    v4d x = {0.5, 0.25, 0.125, 0.0625};
    const v4d step = {1.0, 3.0, 5.0, 7.0};
    const v4d scale = {1e-9, 2e-9, 3e-9, 4e-9};
    for (long i = 0; i < n; i++) {
        acc += x * scale;
        x += step;
        if (x[0] > 1e6)
            x -= (v4d){1e6, 1e6, 1e6, 1e6};
    }
    double sum = acc[0] + acc[1] + acc[2] + acc[3];
    return sum;
}
