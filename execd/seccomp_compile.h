#ifndef EXECD_SECCOMP_COMPILE_H
#define EXECD_SECCOMP_COMPILE_H

/* `execd --seccomp-bpf`: seccomp spec records on stdin, the compiled filter on stdout (see seccomp_compile.c). */
int seccomp_compile_main(void);

#endif
