/* Paths inside the container's rootfs, resolved the way the container will see them: symlinks and ".."
 * stay inside (openat2 RESOLVE_IN_ROOT), so an image cannot point a mount or a device at the host. */
#ifndef EXECD_INROOT_H
#define EXECD_INROOT_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

int open_in_root(int root_fd, const char *path, int flags, mode_t mode);

/* mkdir -p inside the rootfs; returns an O_PATH fd of the directory or -1 with errno. */
int mkdir_in_root(int root_fd, const char *path, mode_t mode);

/* The mount point as an O_PATH fd, created (dir, or empty file for a file bind) when missing. */
int mount_point(int root_fd, const char *dest, bool is_dir, int *out, execd_error_t *err);

#endif
