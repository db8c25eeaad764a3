/* Floods the console: 5000 numbered lines, then a clean exit (tests/test_run_output.py). */
#include "atomsim_rt.h"

int main(void) {
    for (uint32_t i = 0; i < 5000; i++) {
        atomsim_puts("flood line ");
        atomsim_put_u32(i);
        atomsim_putc('\n');
    }
    return 0;
}
