#define _GNU_SOURCE
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int
set_oom_score_adj(const struct security *sec, execd_error_t *err)
{
	if (!sec->has_oom_score_adj)
		return 0;
	char text[16];
	int n = snprintf(text, sizeof text, "%d", sec->oom_score_adj);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return error_errno(err, errno, "open /proc/self/oom_score_adj");
	ssize_t w = write(fd, text, (size_t) n);
	int e = errno;
	close(fd);
	if (w != n)
		return error_errno(err, w < 0 ? e : EIO, "write /proc/self/oom_score_adj");
	return 0;
}

int
set_rlimits(const struct security *sec, execd_error_t *err)
{
	for (size_t i = 0; i < sec->nrlimits; i++)
		if (setrlimit(sec->rlimits[i].resource, &sec->rlimits[i].limit) < 0)
			return error_errno(err, errno, "setrlimit %d", sec->rlimits[i].resource);
	return 0;
}

static const char *
env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);
	for (; env && *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

void
add_home(struct spec *s)
{
	if (env_get(s->env.v, "HOME"))
		return;
	char home[PATH_MAX] = "/";
	char line[1024];
	FILE *f = fopen("/etc/passwd", "re");
	while (f && fgets(line, sizeof line, f)) {
		/* name:password:uid:gid:gecos:home:shell; strsep keeps the empty fields */
		char *fields[7], *p = line;
		int n = 0;
		while (n < 7 && (fields[n] = strsep(&p, ":\n")) != NULL)
			n++;
		char *end;
		if (n < 6 || fields[2][0] == '\0' || strtoul(fields[2], &end, 10) != s->uid || *end)
			continue;
		snprintf(home, sizeof home, "%s", fields[5][0] ? fields[5] : "/");
		break;
	}
	if (f)
		fclose(f);
	char *entry = xrealloc(NULL, strlen(home) + 6);
	sprintf(entry, "HOME=%s", home);
	strv_push(&s->env, entry);
}

int
make_cwd(const char *cwd, execd_error_t *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s", cwd) >= (int) sizeof path)
		return error_errno(err, ENAMETOOLONG, "mkdir %s", cwd);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return error_errno(err, errno, "mkdir %s", path);
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

int
set_user(const struct spec *s, execd_error_t *err)
{
	if (setgroups(s->ngroups, s->groups) < 0)
		return error_errno(err, errno, "setgroups");
	if (setgid(s->gid) < 0)
		return error_errno(err, errno, "setgid %u", s->gid);
	if (setuid(s->uid) < 0)
		return error_errno(err, errno, "setuid %u", s->uid);
	return 0;
}

/* Go's exec.LookPath: the first regular file with an execute bit in $PATH. */
static bool
find_in_path(const char *file, const char *search, char *out, size_t outlen)
{
	const char *p = search;
	for (;;) {
		const char *end = strchrnul(p, ':');
		int n = (int) (end - p);
		if (snprintf(out, outlen, "%.*s%s%s", n, n ? p : ".", "/", file) < (int) outlen) {
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
				return true;
		}
		if (*end == '\0')
			return false;
		p = end + 1;
	}
}

int
exec_process(const struct spec *s, execd_error_t *err)
{
	const char *arg0 = s->args.v[0];
	char found[PATH_MAX], why[128];
	const char *file = arg0;
	if (strchr(arg0, '/') == NULL) {
		const char *search = env_get(s->env.v, "PATH");
		if (!find_in_path(arg0, search ? search : DEFAULT_PATH, found, sizeof found))
			return error_exec(err, ENOENT, 127, "exec: \"%s\": executable file not found in $PATH", arg0);
		file = found;
	} else {
		struct stat st;
		if (stat(arg0, &st) < 0)
			return error_exec(err, errno, errno == ENOENT ? 127 : 126, "exec: \"%s\": stat %s: %s", arg0, arg0,
					 lower_strerror(errno, why, sizeof why));
		if (S_ISDIR(st.st_mode))
			return error_exec(err, EACCES, 126, "exec: \"%s\": permission denied", arg0);
	}
	execve(file, s->args.v, s->env.v);
	int e = errno;
	return error_exec(err, e, e == ENOENT ? 127 : 126, "exec: \"%s\": %s", arg0, lower_strerror(e, why, sizeof why));
}

