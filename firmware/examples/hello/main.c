/* Prints one line and exits 0: the smallest end-to-end check of a board. */
#include "atomsim_rt.h"

int main(void) {
    atomsim_puts("Hello from " ATOMSIM_BOARD_NAME "!\n");
    return 0;
}
