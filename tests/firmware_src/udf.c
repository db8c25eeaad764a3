/* Executes a permanently undefined instruction: a UsageFault escalated to HardFault. */
#include "atomsim_rt.h"

int main(void) {
    atomsim_puts("executing UDF\n");
    __asm volatile("udf #0");
    return 0;
}
