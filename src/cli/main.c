/* main.c: the cpt command dispatcher. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: cpt <command> [options]\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "cpt: unknown command '%s'\n", argv[1]);
    return 2;
}
