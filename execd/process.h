/* The container's process: limits, user, environment, working directory, execve. */
#ifndef EXECD_PROCESS_H
#define EXECD_PROCESS_H

#include "error.h"
#include "spec.h"

/* --oom-score-adj of the process (inherited by what it runs), through the /proc it can see now. */
int set_oom_score_adj(const struct security *sec, execd_error_t *err);

int set_rlimits(const struct security *sec, execd_error_t *err);

/* HOME from the container's /etc/passwd, as runc does when the spec has none. */
void add_home(struct spec *s);

/* mkdir -p, as Docker creates a missing working directory */
int make_cwd(const char *cwd, execd_error_t *err);

int set_user(const struct spec *s, execd_error_t *err);

/* Returns only on failure, with Docker's words (exit code 126 or 127). */
int exec_process(const struct spec *s, execd_error_t *err);

#endif
