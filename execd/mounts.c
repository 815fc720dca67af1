#define _GNU_SOURCE
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "inroot.h"
#include "util.h"

/* The source of a bind: its type decides whether the mount point is a directory or a file. */
static int
stat_source(const char *source, const char *dest, struct stat *st, execd_error_t *err)
{
	if (stat(source, st) == 0)
		return 0;
	error_errno(err, errno, "stat %s", source);
	return error_wrap(err, "mount %s", dest);
}

int
mount_on_fd(const char *source, int target_fd, const char *fstype, unsigned long flags, const char *data)
{
	char target[40];
	snprintf(target, sizeof target, "/proc/self/fd/%d", target_fd);
	return mount(source, target, fstype, flags, data);
}

int
mount_again(int root_fd, const char *dest, unsigned long flags)
{
	cleanup_fd int fd = open_in_root(root_fd, dest, O_PATH, 0);
	if (fd < 0)
		return -1;
	return mount_on_fd(NULL, fd, NULL, flags, NULL);
}

int
bind_host_path(int root_fd, const char *source, const char *dest, bool readonly, execd_error_t *err)
{
	struct stat st;
	if (stat_source(source, dest, &st, err) < 0)
		return -1;
	cleanup_fd int target = -1;
	if (mount_point(root_fd, dest, S_ISDIR(st.st_mode), &target, err) < 0)
		return -1;
	if (mount_on_fd(source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return error_errno(err, errno, "mount %s", dest);
	if (readonly && mount_again(root_fd, dest, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
		return error_errno(err, errno, "remount %s read-only", dest);
	return 0;
}

int
mount_fs(int root_fd, const struct fs_mount *m, execd_error_t *err)
{
	cleanup_fd int target = -1;
	if (mount_point(root_fd, m->destination, true, &target, err) < 0)
		return -1;
	if (mount_on_fd(m->source ? m->source : m->type, target, m->type, m->flags, m->data) < 0)
		return error_errno(err, errno, "mount %s", m->destination);
	return 0;
}


struct mount_options {
	unsigned long flags;         /* MS_* for the mount itself */
	unsigned long propagation;   /* MS_PRIVATE, MS_SLAVE, ... | MS_REC */
	bool bind, recursive;
	char data[1024];             /* fs-specific options, comma-separated */
};

static int
parse_mount_options(const char *options, struct mount_options *o, execd_error_t *err)
{
	static const struct { const char *name; bool clear; unsigned long flag; } flag_table[] = {
		{ "ro", false, MS_RDONLY }, { "rw", true, MS_RDONLY }, { "nosuid", false, MS_NOSUID },
		{ "suid", true, MS_NOSUID }, { "nodev", false, MS_NODEV }, { "dev", true, MS_NODEV },
		{ "noexec", false, MS_NOEXEC }, { "exec", true, MS_NOEXEC }, { "sync", false, MS_SYNCHRONOUS },
		{ "async", true, MS_SYNCHRONOUS }, { "dirsync", false, MS_DIRSYNC }, { "noatime", false, MS_NOATIME },
		{ "atime", true, MS_NOATIME }, { "nodiratime", false, MS_NODIRATIME }, { "relatime", false, MS_RELATIME },
		{ "norelatime", true, MS_RELATIME }, { "strictatime", false, MS_STRICTATIME },
	};
	static const struct { const char *name; unsigned long flag; } propagation_table[] = {
		{ "private", MS_PRIVATE }, { "rprivate", MS_PRIVATE | MS_REC }, { "shared", MS_SHARED },
		{ "rshared", MS_SHARED | MS_REC }, { "slave", MS_SLAVE }, { "rslave", MS_SLAVE | MS_REC },
		{ "unbindable", MS_UNBINDABLE }, { "runbindable", MS_UNBINDABLE | MS_REC },
	};
	*o = (struct mount_options) { 0 };
	cleanup_free char *copy = xstrndup(options, strlen(options));
	char *save = NULL;
	for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		bool known = false;
		for (size_t i = 0; !known && i < sizeof flag_table / sizeof flag_table[0]; i++)
			if (strcmp(opt, flag_table[i].name) == 0) {
				o->flags = flag_table[i].clear ? o->flags & ~flag_table[i].flag : o->flags | flag_table[i].flag;
				known = true;
			}
		for (size_t i = 0; !known && i < sizeof propagation_table / sizeof propagation_table[0]; i++)
			if (strcmp(opt, propagation_table[i].name) == 0) {
				o->propagation = propagation_table[i].flag;
				known = true;
			}
		if (known || strcmp(opt, "defaults") == 0)
			continue;
		if (strcmp(opt, "bind") == 0 || strcmp(opt, "rbind") == 0) {
			o->bind = true;
			o->recursive = opt[0] == 'r';
			continue;
		}
		size_t used = strlen(o->data);
		if (used + strlen(opt) + 2 > sizeof o->data)
			return error_msg(err, E2BIG, "mount options \"%s\" are too long", options);
		snprintf(o->data + used, sizeof o->data - used, "%s%s", used ? "," : "", opt);
	}
	return 0;
}

int
mount_spec_entry(int root_fd, const struct mount_entry *m, execd_error_t *err)
{
	struct mount_options o;
	if (parse_mount_options(m->options, &o, err) < 0)
		return -1;
	bool bind = o.bind || strcmp(m->type, "bind") == 0;
	bool is_dir = true;
	if (bind) {
		struct stat st;
		if (stat_source(m->source, m->destination, &st, err) < 0)
			return -1;
		is_dir = S_ISDIR(st.st_mode);
	}
	cleanup_fd int target = -1;
	if (mount_point(root_fd, m->destination, is_dir, &target, err) < 0)
		return -1;
	if (bind) {
		if (mount_on_fd(m->source, target, NULL, MS_BIND | (o.recursive ? MS_REC : 0), NULL) < 0)
			return error_errno(err, errno, "mount %s", m->destination);
		/* flags on a bind mount only take effect through a remount */
		if (o.flags && mount_again(root_fd, m->destination, MS_BIND | MS_REMOUNT | o.flags) < 0)
			return error_errno(err, errno, "remount %s", m->destination);
	} else {
		const char *source = m->source[0] ? m->source : m->type;
		if (mount_on_fd(source, target, m->type, o.flags, o.data[0] ? o.data : NULL) < 0)
			return error_errno(err, errno, "mount %s", m->destination);
	}
	if (o.propagation && mount_again(root_fd, m->destination, o.propagation) < 0)
		return error_errno(err, errno, "set propagation of %s", m->destination);
	return 0;
}
