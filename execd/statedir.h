/* The container's state directory (protocol.h's files): execd runs in it, so every name is relative
 * (no sun_path length limit on deep paths). */
#ifndef EXECD_STATEDIR_H
#define EXECD_STATEDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* chdir into it and remove the files of a previous run. */
int enter_state_dir(const char *state_dir, execd_error_t *err);

int listen_control_socket(int *out, execd_error_t *err);

/* Atomic by rename, without fsync (see statedir.c). */
int write_file_atomic(const char *name, const char *data, size_t len, execd_error_t *err);

int write_pid_file(pid_t pid, execd_error_t *err);

#endif
