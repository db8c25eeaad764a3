/* A static buffer larger than any board's RAM region: the link must fail with the numbers. */
#include <stdint.h>

static volatile uint8_t big[600 * 1024];

int main(void) {
    big[0] = 1;
    return big[0];
}
