#define _GNU_SOURCE
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"
#include "util.h"

/* No fsync: the state directory lives in the exec-root, which only has to outlive the daemon (the page
 * cache does), not the machine (it is a tmpfs, /run/pyd, that a reboot empties). */
int
write_file_atomic(const char *name, const char *data, size_t len, execd_error_t *err)
{
	char tmp[64];
	snprintf(tmp, sizeof tmp, ".%s.tmp", name);
	cleanup_fd int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return error_errno(err, errno, "write %s", name);
	if (write_full(fd, data, len) < 0)
		return error_errno(err, errno, "write %s", name);
	if (rename(tmp, name) < 0)
		return error_errno(err, errno, "rename %s", name);
	return 0;
}

int
enter_state_dir(const char *state_dir, execd_error_t *err)
{
	if (chdir(state_dir) < 0)
		return error_errno(err, errno, "chdir %s", state_dir);
	/* a restarted container reuses the directory: old files must not be read as the new ones */
	if (unlink(EXIT_FILE) < 0 && errno != ENOENT)
		return error_errno(err, errno, "remove stale exit file");
	if (unlink(PID_FILE) < 0 && errno != ENOENT)
		return error_errno(err, errno, "remove stale pid file");
	return 0;
}

int
listen_control_socket(int *out, execd_error_t *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = CONTROL_SOCKET };
	cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return error_errno(err, errno, "create control socket");
	if (unlink(CONTROL_SOCKET) < 0 && errno != ENOENT)
		return error_errno(err, errno, "remove stale control socket");
	if (bind(fd, (struct sockaddr *) &addr, sizeof addr) < 0)
		return error_errno(err, errno, "bind control socket");
	if (listen(fd, 16) < 0)
		return error_errno(err, errno, "listen on control socket");
	*out = fd;
	fd = -1;
	return 0;
}

int
write_pid_file(pid_t pid, execd_error_t *err)
{
	char text[24];
	int n = snprintf(text, sizeof text, "%d\n", pid);
	return write_file_atomic(PID_FILE, text, (size_t) n, err);
}
