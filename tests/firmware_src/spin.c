/* Never stops: a counting loop (not a branch to itself), for the instruction budget. */
#include <stdint.h>

int main(void) {
    volatile uint32_t n = 0;
    for (;;)
        n++;
}
