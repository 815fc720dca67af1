#define _GNU_SOURCE
#include "inroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

int
open_in_root(int root_fd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t) (flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return (int) syscall(SYS_openat2, root_fd, path, &how, sizeof how);
}

int
mkdir_in_root(int root_fd, const char *path, mode_t mode)
{
	char prefix[PATH_MAX];
	if (strlen(path) >= sizeof prefix) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open_in_root(root_fd, path, O_PATH | O_DIRECTORY, 0);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	cleanup_fd int parent = open_in_root(root_fd, "/", O_PATH | O_DIRECTORY, 0);
	if (parent < 0)
		return -1;
	strcpy(prefix, path);
	char *p = prefix;
	while (*p) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		char *name = p;
		while (*p && *p != '/')
			p++;
		char saved = *p;
		*p = '\0';
		fd = open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY, 0);
		if (fd < 0 && errno == ENOENT) {
			if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
				return -1;
			fd = open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY, 0);
		}
		if (fd < 0)
			return -1;
		close(parent);
		parent = fd;
		*p = saved;
	}
	fd = parent;
	parent = -1;
	return fd;
}

int
mount_point(int root_fd, const char *dest, bool is_dir, int *out, execd_error_t *err)
{
	if (is_dir) {
		*out = mkdir_in_root(root_fd, dest, 0755);
		if (*out < 0)
			return error_errno(err, errno, "create mount point %s", dest);
		return 0;
	}
	*out = open_in_root(root_fd, dest, O_PATH, 0);
	if (*out >= 0 || errno != ENOENT)
		return *out < 0 ? error_errno(err, errno, "open mount point %s", dest) : 0;
	cleanup_free char *dir = xstrndup(dest, strlen(dest));
	char *slash = strrchr(dir, '/');
	slash[slash == dir ? 1 : 0] = '\0';
	cleanup_fd int dfd = mkdir_in_root(root_fd, dir, 0755);
	if (dfd < 0)
		return error_errno(err, errno, "create mount point %s", dest);
	cleanup_fd int f = open_in_root(root_fd, dest, O_CREAT | O_RDONLY, 0644);
	if (f < 0)
		return error_errno(err, errno, "create mount point %s", dest);
	*out = open_in_root(root_fd, dest, O_PATH, 0);
	if (*out < 0)
		return error_errno(err, errno, "open mount point %s", dest);
	return 0;
}
