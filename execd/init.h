#ifndef EXECD_INIT_H
#define EXECD_INIT_H

/* `execd -- CMD ARGS`: the container's PID 1 for --init (see init.c). */
int init_main(char **cmd);

#endif
