#define _GNU_SOURCE
#include "security.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
drop_bounding_caps(const struct security *sec, execd_error_t *err)
{
	for (int cap = 0; cap < 64; cap++) {
		if (sec->cap_bounding & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break;   /* past the kernel's last capability */
			return error_errno(err, errno, "drop capability %d from the bounding set", cap);
		}
	}
	return 0;
}

static int
set_caps(const struct security *sec, execd_error_t *err)
{
	struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++)
		data[i] = (struct __user_cap_data_struct) {
			.effective = (uint32_t) (sec->cap_effective >> (32 * i)),
			.permitted = (uint32_t) (sec->cap_permitted >> (32 * i)),
			.inheritable = (uint32_t) (sec->cap_inheritable >> (32 * i)),
		};
	if (syscall(SYS_capset, &head, data) < 0)
		return error_errno(err, errno, "set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return error_errno(err, errno, "clear ambient capabilities");
	for (int cap = 0; cap < 64; cap++)
		if ((sec->cap_ambient & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			return error_errno(err, errno, "raise ambient capability %d", cap);
	return 0;
}

void
seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/* The rules' filter; failures are leaves of the "seccomp" context. */
static int
add_rules(const struct security *sec, scmp_filter_ctx *out, execd_error_t *err)
{
	scmp_filter_ctx ctx = *out = seccomp_init(sec->seccomp_default);
	if (ctx == NULL)
		return error_errno(err, EINVAL, "invalid default action");
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);   /* no_new_privs is ours to decide */
	if (r < 0)
		return error_errno(err, -r, "set attribute");
	for (size_t i = 0; i < sec->seccomp_arches.n; i++) {
		r = seccomp_arch_add(ctx, seccomp_arch_resolve_name(sec->seccomp_arches.v[i]));
		if (r < 0 && r != -EEXIST)
			return error_errno(err, -r, "add architecture %s", sec->seccomp_arches.v[i]);
	}
	for (size_t i = 0; i < sec->nrules; i++) {
		const struct seccomp_rule *rule = &sec->rules[i];
		r = seccomp_rule_add_array(ctx, rule->action, rule->syscall, rule->nargs, rule->args);
		if (r < 0) {
			char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rule->syscall);
			error_errno(err, -r, "add rule for %s", name ? name : "?");
			free(name);
			return -1;
		}
	}
	return 0;
}

int
build_seccomp(const struct security *sec, scmp_filter_ctx *out, execd_error_t *err)
{
	return add_rules(sec, out, err) < 0 ? error_wrap(err, "seccomp") : 0;
}

/* A compiled filter goes in with one syscall (libseccomp's own load uses no flags either); compiling the
 * rules here instead costs about 10 ms per container. */
static int
load_filter(const struct security *sec, execd_error_t *err)
{
	if (sec->bpf_len) {
		struct sock_fprog prog = { .len = (unsigned short) sec->bpf_len, .filter = sec->bpf };
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			return error_errno(err, errno, "load filter");
		return 0;
	}
	__attribute__((cleanup(seccomp_releasep))) scmp_filter_ctx ctx = NULL;
	if (add_rules(sec, &ctx, err) < 0)
		return -1;
	int r = seccomp_load(ctx);
	if (r < 0)
		return error_errno(err, -r, "load filter");
	return 0;
}

static int
load_seccomp(const struct security *sec, execd_error_t *err)
{
	return load_filter(sec, err) < 0 ? error_wrap(err, "seccomp") : 0;
}

/* Before the user switch: the bounding set needs root's capabilities; without no_new_privs the
 * filter needs CAP_SYS_ADMIN, so it goes in now (runc's order) and must allow what follows until execve. */
int
secure_before_user(const struct security *sec, execd_error_t *err)
{
	if (sec->has_caps && drop_bounding_caps(sec, err) < 0)
		return -1;
	if (sec->has_seccomp && !sec->no_new_privs && load_seccomp(sec, err) < 0)
		return -1;
	return 0;
}

int
secure_after_user(const struct security *sec, execd_error_t *err)
{
	return sec->has_caps ? set_caps(sec, err) : 0;
}

/* The last step before execve: no_new_privs and then the filter, which no longer needs privileges. */
int
secure_before_exec(const struct security *sec, execd_error_t *err)
{
	if (!sec->no_new_privs)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return error_errno(err, errno, "set no_new_privs");
	return sec->has_seccomp ? load_seccomp(sec, err) : 0;
}
