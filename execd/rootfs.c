#define _GNU_SOURCE
#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "inroot.h"
#include "mounts.h"
#include "util.h"

static int
make_device(int dev_fd, const char *name, unsigned int major, unsigned int minor, execd_error_t *err)
{
	if (mknodat(dev_fd, name, S_IFCHR | 0666, makedev(major, minor)) == 0)
		return 0;
	if (errno != EPERM)
		return error_errno(err, errno, "mknod /dev/%s", name);
	/* without CAP_MKNOD (user namespaces) bind the host's node instead */
	cleanup_fd int f = openat(dev_fd, name, O_CREAT | O_RDONLY | O_CLOEXEC, 0666);
	if (f < 0)
		return error_errno(err, errno, "create /dev/%s", name);
	char host[32];
	snprintf(host, sizeof host, "/dev/%s", name);
	if (mount_on_fd(host, f, NULL, MS_BIND, NULL) < 0)
		return error_errno(err, errno, "bind /dev/%s", name);
	return 0;
}

static int
populate_dev(int root_fd, execd_error_t *err)
{
	static const struct { const char *name; unsigned int major, minor; } devices[] = {
		{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
		{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
	};
	static const struct { const char *name, *target; } links[] = {
		{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
		{ "stderr", "/proc/self/fd/2" }, { "ptmx", "pts/ptmx" }, { "core", "/proc/kcore" },
	};
	cleanup_fd int dev_fd = open_in_root(root_fd, "/dev", O_PATH | O_DIRECTORY, 0);
	if (dev_fd < 0)
		return error_errno(err, errno, "open /dev");
	for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
		if (make_device(dev_fd, devices[i].name, devices[i].major, devices[i].minor, err) < 0)
			return -1;
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (symlinkat(links[i].target, dev_fd, links[i].name) < 0)
			return error_errno(err, errno, "symlink /dev/%s", links[i].name);
	return 0;
}

static int
mount_sys(int root_fd, execd_error_t *err)
{
	static const struct fs_mount sys = { "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL };
	if (mount_fs(root_fd, &sys, err) == 0)
		return 0;
	if (err->errnum != EPERM)
		return -1;
	/* sysfs needs the net namespace's owner; otherwise Docker too falls back to a read-only rbind */
	return bind_host_path(root_fd, "/sys", "/sys", true, err);
}

static int
mount_standard_filesystems(int root_fd, execd_error_t *err)
{
	static const struct fs_mount proc = { "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL };
	static const struct fs_mount dev = { "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k" };
	static const struct fs_mount under_dev[] = {
		{ "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5" },
		{ "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k", "shm" },   /* runc's name */
		{ "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	};
	if (mount_fs(root_fd, &proc, err) < 0 || mount_fs(root_fd, &dev, err) < 0 || populate_dev(root_fd, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof under_dev / sizeof under_dev[0]; i++)
		if (mount_fs(root_fd, &under_dev[i], err) < 0)
			return -1;
	return mount_sys(root_fd, err);
}

/* --device: a node like the host's at its path in the container (before pivot_root) */
static int
make_extra_devices(const struct security *sec, int root_fd, execd_error_t *err)
{
	for (size_t i = 0; i < sec->ndevices; i++) {
		const struct device_node *d = &sec->devices[i];
		cleanup_free char *dir = xstrndup(d->path, strlen(d->path));
		char *slash = strrchr(dir, '/');
		const char *name = slash + 1;
		*slash = '\0';
		cleanup_fd int dfd = mkdir_in_root(root_fd, dir[0] ? dir : "/", 0755);
		if (dfd < 0)
			return error_errno(err, errno, "create device directory for %s", d->path);
		cleanup_fd int real = open_in_root(root_fd, dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY, 0);
		if (real < 0)
			return error_errno(err, errno, "open device directory for %s", d->path);
		(void) unlinkat(real, name, 0);
		mode_t type = d->kind == 'b' ? S_IFBLK : S_IFCHR;
		if (mknodat(real, name, type | d->mode, makedev(d->major, d->minor)) < 0)
			return error_errno(err, errno, "mknod %s", d->path);
	}
	return 0;
}

/* --sysctl key=value, written in the container's own namespaces (after pivot_root, before /proc/sys is ro) */
static int
write_sysctls(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->sysctls.n; i++) {
		const char *kv = sec->sysctls.v[i];
		const char *eq = strchr(kv, '=');
		char path[PATH_MAX];
		if (eq == NULL || snprintf(path, sizeof path, "/proc/sys/%.*s", (int) (eq - kv), kv) >= (int) sizeof path)
			return error_msg(err, EINVAL, "sysctl \"%s\" is not valid", kv);
		for (char *p = path + 10; *p; p++)
			if (*p == '.')
				*p = '/';
		cleanup_fd int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0 || write_full(fd, eq + 1, strlen(eq + 1)) < 0)
			return error_errno(err, errno, "write sysctl %.*s", (int) (eq - kv), kv);
	}
	return 0;
}

/* runc's maskPath: /dev/null over a file, an empty read-only tmpfs over a directory; absent paths are fine */
static int
mask_paths(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->masked.n; i++) {
		const char *p = sec->masked.v[i];
		if (mount("/dev/null", p, NULL, MS_BIND, NULL) == 0 || errno == ENOENT)
			continue;
		if (errno != ENOTDIR || mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0") < 0)
			if (errno != ENOENT)
				return error_errno(err, errno, "mask %s", p);
	}
	return 0;
}

static int
readonly_paths(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->readonly.n; i++) {
		const char *p = sec->readonly.v[i];
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			return error_errno(err, errno, "bind %s", p);
		}
		if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			return error_errno(err, errno, "remount %s read-only", p);
	}
	return 0;
}

/* After pivot_root: what only the container's own view of /proc, /sys and /dev can take. */
static int
harden_rootfs(const struct security *sec, execd_error_t *err)
{
	if (sec->shm_size) {
		char data[64];
		snprintf(data, sizeof data, "mode=1777,size=%llu", sec->shm_size);
		if (mount("shm", "/dev/shm", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, data) < 0)
			return error_errno(err, errno, "set /dev/shm size");
	}
	/* --privileged: /sys writable, as in Docker */
	if (sec->privileged && mount(NULL, "/sys", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 &&
	    mount(NULL, "/sys", NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return error_errno(err, errno, "remount /sys read-write");
	if (write_sysctls(sec, err) < 0 || readonly_paths(sec, err) < 0 || mask_paths(sec, err) < 0)
		return -1;
	return 0;
}

static int
pivot_into(int root_fd, execd_error_t *err)
{
	if (fchdir(root_fd) < 0)
		return error_errno(err, errno, "chdir rootfs");
	/* the old root ends up stacked on the new one; detaching it leaves only the rootfs */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return error_errno(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return error_errno(err, errno, "unmount old root");
	if (chdir("/") < 0)
		return error_errno(err, errno, "chdir /");
	return 0;
}

int
setup_rootfs(const struct spec *s, execd_error_t *err)
{
	/* slave, like Docker's default: nothing the container mounts reaches the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return error_errno(err, errno, "make / rslave");
	if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return error_errno(err, errno, "bind rootfs %s", s->rootfs);
	cleanup_fd int root_fd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return error_errno(err, errno, "open rootfs %s", s->rootfs);
	if (mount_standard_filesystems(root_fd, err) < 0 || make_extra_devices(&s->sec, root_fd, err) < 0)
		return -1;
	for (size_t i = 0; i < s->nmounts; i++)
		if (mount_spec_entry(root_fd, &s->mounts[i], err) < 0)
			return -1;
	if (pivot_into(root_fd, err) < 0)
		return -1;
	if (s->readonly_rootfs && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		return error_errno(err, errno, "remount rootfs read-only");
	return harden_rootfs(&s->sec, err);
}
