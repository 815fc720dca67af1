/* The container's root filesystem: the standard file systems and devices, the spec's mounts, pivot_root,
 * then what only the container's own view can take (read-only, masked and read-only paths, sysctls). */
#ifndef EXECD_ROOTFS_H
#define EXECD_ROOTFS_H

#include "error.h"
#include "spec.h"

/* In the container's new mount namespace; afterwards / is the rootfs. */
int setup_rootfs(const struct spec *s, execd_error_t *err);

#endif
