/* Echoes each line received on the console RX, prefixed, until it receives "quit". */
#include "atomsim_rt.h"

int main(void) {
    char line[80];
    atomsim_puts("echo ready\n");
    for (;;) {
        atomsim_readline(line, sizeof line);
        if (line[0] == 'q' && line[1] == 'u' && line[2] == 'i' && line[3] == 't' && !line[4])
            break;
        atomsim_puts("echo: ");
        atomsim_puts(line);
        atomsim_putc('\n');
    }
    return 0;
}
