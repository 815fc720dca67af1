#define _GNU_SOURCE
#include "init.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* `--init` (HostConfig.Init): execd bind-mounted at /sbin/docker-init runs as the container's PID 1 with
 * `docker-init -- CMD ARGS`, as tini does: it forks CMD, reaps every zombie, forwards the signals sent to
 * it (those a terminal sends reach CMD's process group directly) and exits as CMD did. */
int
init_main(char **cmd)
{
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGILL); sigdelset(&all, SIGSEGV); sigdelset(&all, SIGBUS); sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGABRT); sigdelset(&all, SIGTRAP); sigdelset(&all, SIGSYS);
	sigprocmask(SIG_SETMASK, &all, &old);   /* blocked, not ignored: PID 1 still gets them */
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "[FATAL pyd-init] fork failed: %s\n", strerror(errno));
		return 1;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(cmd[0], cmd);
		fprintf(stderr, "[FATAL pyd-init] exec %s failed: %s\n", cmd[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			if (info.si_code != SI_KERNEL)
				(void) kill(child, sig);
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == child)
				return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
}
