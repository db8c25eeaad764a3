/* Reports failure through the runtime: a non-zero exit with a message. */
#include "atomsim_rt.h"

int main(void) {
    atomsim_fail("self-check mismatch at index 3");
    return 0;
}
