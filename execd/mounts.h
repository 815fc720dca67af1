/* Mounting inside the rootfs before pivot_root: file systems, binds of host paths, the spec's mounts. */
#ifndef EXECD_MOUNTS_H
#define EXECD_MOUNTS_H

#include <stdbool.h>

#include "error.h"
#include "spec.h"

/* mount(2) onto an fd's path (/proc/self/fd/N): the target was resolved inside the rootfs. */
int mount_on_fd(const char *source, int target_fd, const char *fstype, unsigned long flags, const char *data);

/* Remount flags or propagation on whatever is now mounted at dest. */
int mount_again(int root_fd, const char *dest, unsigned long flags);

int bind_host_path(int root_fd, const char *source, const char *dest, bool readonly, execd_error_t *err);

struct fs_mount {
	const char *destination, *type;
	unsigned long flags;
	const char *data;
	const char *source;   /* NULL: the type's name, as mount(8) shows it */
};

int mount_fs(int root_fd, const struct fs_mount *m, execd_error_t *err);

/* One mount record of the spec (destination, type, source, options as mount(8) spells them). */
int mount_spec_entry(int root_fd, const struct mount_entry *m, execd_error_t *err);

#endif
