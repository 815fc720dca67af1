#define _GNU_SOURCE
#include "spec.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A record's bad content is a leaf of the "spec" context, bad framing one of "read spec": read_spec_records
 * and read_spec add those. */

static int
spec_string(const char *key, const char *val, size_t vlen, char **out, execd_error_t *err)
{
	if (strlen(val) != vlen)
		return error_msg(err, EINVAL, "value of \"%s\" contains a NUL byte", key);
	free(*out);
	*out = xstrndup(val, vlen);
	return 0;
}

static int
spec_uint(const char *key, const char *val, unsigned long max, unsigned long *out, execd_error_t *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || end == val || *end || v > max || val[0] == '-')
		return error_msg(err, EINVAL, "invalid number \"%s\" for \"%s\"", val, key);
	*out = v;
	return 0;
}

static int
spec_bool(const char *key, const char *val, bool *out, execd_error_t *err)
{
	unsigned long v;
	if (spec_uint(key, val, 1, &v, err) < 0)
		return -1;
	*out = v == 1;
	return 0;
}

static const struct { const char *name; int flag; } namespace_table[] = {
	{ "mnt", CLONE_NEWNS }, { "pid", CLONE_NEWPID }, { "uts", CLONE_NEWUTS },
	{ "ipc", CLONE_NEWIPC }, { "net", CLONE_NEWNET }, { "cgroup", CLONE_NEWCGROUP },
};

int
namespace_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof namespace_table / sizeof namespace_table[0]; i++)
		if (strlen(namespace_table[i].name) == len && strncmp(name, namespace_table[i].name, len) == 0)
			return namespace_table[i].flag;
	return 0;
}

static int
spec_namespace(const char *val, int *flags, execd_error_t *err)
{
	int flag = namespace_flag(val, strlen(val));
	if (!flag)
		return error_msg(err, EINVAL, "unknown namespace \"%s\"", val);
	*flags |= flag;
	return 0;
}

/* join value: KIND:PATH, e.g. net:/run/pyd/netns/ID; the mount namespace is always new */
static int
spec_join(struct spec *s, const char *val, execd_error_t *err)
{
	const char *colon = strchr(val, ':');
	int flag = colon ? namespace_flag(val, (size_t) (colon - val)) : 0;
	if (!flag || flag == CLONE_NEWNS || colon[1] != '/')
		return error_msg(err, EINVAL, "invalid namespace join \"%s\"", val);
	if (s->njoins == sizeof s->joins / sizeof s->joins[0])
		return error_msg(err, EINVAL, "too many namespace joins");
	s->joins[s->njoins++] = (struct ns_join) { .flag = flag, .path = xstrndup(colon + 1, strlen(colon + 1)), .fd = -1 };
	return 0;
}

/* mount value: destination NUL type NUL source NUL options */
static int
spec_mount(struct spec *s, const char *val, size_t vlen, execd_error_t *err)
{
	const char *fields[4];
	const char *p = val, *end = val + vlen;
	for (int i = 0; i < 4; i++) {
		if (p > end)
			return error_msg(err, EINVAL, "mount needs 4 NUL-separated fields");
		fields[i] = p;
		p += strnlen(p, (size_t) (end - p)) + 1;
	}
	if (p != end + 1)
		return error_msg(err, EINVAL, "mount needs exactly 4 NUL-separated fields");
	s->mounts = xrealloc(s->mounts, (s->nmounts + 1) * sizeof *s->mounts);
	s->mounts[s->nmounts++] = (struct mount_entry) {
		.destination = xstrndup(fields[0], strlen(fields[0])),
		.type = xstrndup(fields[1], strlen(fields[1])),
		.source = xstrndup(fields[2], strlen(fields[2])),
		.options = xstrndup(fields[3], strlen(fields[3])),
	};
	return 0;
}

static int
spec_list_item(const char *key, const char *val, size_t vlen, struct strv *list, execd_error_t *err)
{
	char *item = NULL;
	if (spec_string(key, val, vlen, &item, err) < 0)
		return -1;
	strv_push(list, item);
	return 0;
}

/* "ACTION NAME NARGS [INDEX OP VALUE VALUE_TWO]...": one rule of a profile the daemon already evaluated */
static int
spec_seccomp_rule(struct security *sec, const char *val, execd_error_t *err)
{
	char name[128];
	unsigned long action;
	unsigned int nargs;
	int used;
	if (sscanf(val, "%lu %127s %u%n", &action, name, &nargs, &used) != 3 || nargs > 6 || action > UINT32_MAX)
		return error_msg(err, EINVAL, "invalid seccomp rule \"%s\"", val);
	struct seccomp_rule rule = { .action = (uint32_t) action, .nargs = nargs };
	const char *p = val + used;
	for (unsigned int i = 0; i < nargs; i++) {
		unsigned int index, op;
		unsigned long long v1, v2;
		if (sscanf(p, "%u %u %llu %llu%n", &index, &op, &v1, &v2, &used) != 4 || index > 5 || op < SCMP_CMP_NE ||
		    op > SCMP_CMP_MASKED_EQ)
			return error_msg(err, EINVAL, "invalid seccomp rule \"%s\"", val);
		rule.args[i] = (struct scmp_arg_cmp) { .arg = index, .op = (enum scmp_compare) op, .datum_a = v1, .datum_b = v2 };
		p += used;
	}
	rule.syscall = seccomp_syscall_resolve_name(name);
	if (rule.syscall == __NR_SCMP_ERROR)
		return 0;
	sec->rules = xrealloc(sec->rules, (sec->nrules + 1) * sizeof *sec->rules);
	sec->rules[sec->nrules++] = rule;
	return 0;
}

/* A compiled filter: struct sock_filter[] in this machine's byte order, as seccomp_export_bpf() wrote it. */
static int
spec_seccomp_bpf(struct security *sec, const char *val, size_t vlen, execd_error_t *err)
{
	if (vlen == 0 || vlen % sizeof(struct sock_filter) || vlen / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return error_msg(err, EINVAL, "invalid seccomp_bpf of %zu bytes", vlen);
	free(sec->bpf);
	sec->bpf = xrealloc(NULL, vlen);
	memcpy(sec->bpf, val, vlen);
	sec->bpf_len = vlen / sizeof(struct sock_filter);
	sec->has_seccomp = true;
	return 0;
}

static int
spec_rlimit(struct security *sec, const char *val, execd_error_t *err)
{
	int resource;
	unsigned long long soft, hard;
	if (sscanf(val, "%d %llu %llu", &resource, &soft, &hard) != 3 || resource < 0 || resource >= RLIM_NLIMITS)
		return error_msg(err, EINVAL, "invalid rlimit \"%s\"", val);
	sec->rlimits = xrealloc(sec->rlimits, (sec->nrlimits + 1) * sizeof *sec->rlimits);
	sec->rlimits[sec->nrlimits].resource = resource;
	sec->rlimits[sec->nrlimits++].limit = (struct rlimit) { .rlim_cur = soft, .rlim_max = hard };
	return 0;
}

/* "c|b MAJOR MINOR MODE(octal) PATH" */
static int
spec_device(struct security *sec, const char *val, execd_error_t *err)
{
	char kind;
	unsigned int major, minor, mode;
	int used;
	if (sscanf(val, "%c %u %u %o %n", &kind, &major, &minor, &mode, &used) != 4 || (kind != 'c' && kind != 'b') ||
	    val[used] != '/')
		return error_msg(err, EINVAL, "invalid device \"%s\"", val);
	sec->devices = xrealloc(sec->devices, (sec->ndevices + 1) * sizeof *sec->devices);
	sec->devices[sec->ndevices++] = (struct device_node) { kind, major, minor, (mode_t) (mode & 07777),
							      xstrndup(val + used, strlen(val + used)) };
	return 0;
}

/* The security keys; returns 1 when key is not one of them. */
static int
spec_security(struct security *sec, const char *key, const char *val, execd_error_t *err)
{
	unsigned long n;
	if (strcmp(key, KEY_CAPS) == 0) {
		unsigned long long v[5];
		if (sscanf(val, "%llx %llx %llx %llx %llx", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5)
			return error_msg(err, EINVAL, "invalid caps \"%s\"", val);
		sec->has_caps = true;
		sec->cap_bounding = v[0], sec->cap_effective = v[1], sec->cap_permitted = v[2];
		sec->cap_inheritable = v[3], sec->cap_ambient = v[4];
		return 0;
	}
	if (strcmp(key, KEY_NO_NEW_PRIVS) == 0)
		return spec_bool(key, val, &sec->no_new_privs, err);
	if (strcmp(key, KEY_PRIVILEGED) == 0)
		return spec_bool(key, val, &sec->privileged, err);
	if (strcmp(key, KEY_MASKED_PATH) == 0 || strcmp(key, KEY_READONLY_PATH) == 0 || strcmp(key, KEY_SYSCTL) == 0) {
		bool sysctl = strcmp(key, KEY_SYSCTL) == 0;
		struct strv *list = sysctl ? &sec->sysctls : strcmp(key, KEY_MASKED_PATH) == 0 ? &sec->masked : &sec->readonly;
		if (!sysctl && val[0] != '/')
			return error_msg(err, EINVAL, "%s \"%s\" is not absolute", key, val);
		strv_push(list, xstrndup(val, strlen(val)));
		return 0;
	}
	if (strcmp(key, KEY_SECCOMP_DEFAULT) == 0) {
		if (spec_uint(key, val, UINT32_MAX, &n, err) < 0)
			return -1;
		sec->has_seccomp = true;
		sec->seccomp_default = (uint32_t) n;
		return 0;
	}
	if (strcmp(key, KEY_SECCOMP_ARCH) == 0) {
		if (seccomp_arch_resolve_name(val) == 0)
			return error_msg(err, EINVAL, "unknown seccomp architecture \"%s\"", val);
		strv_push(&sec->seccomp_arches, xstrndup(val, strlen(val)));
		return 0;
	}
	if (strcmp(key, KEY_SECCOMP_RULE) == 0)
		return spec_seccomp_rule(sec, val, err);
	if (strcmp(key, KEY_RLIMIT) == 0)
		return spec_rlimit(sec, val, err);
	if (strcmp(key, KEY_DEVICE) == 0)
		return spec_device(sec, val, err);
	if (strcmp(key, KEY_SHM_SIZE) == 0) {
		if (spec_uint(key, val, ULONG_MAX, &n, err) < 0)
			return -1;
		sec->shm_size = n;
		return 0;
	}
	if (strcmp(key, KEY_OOM_SCORE_ADJ) == 0) {
		char *end;
		errno = 0;
		long v = strtol(val, &end, 10);
		if (errno || end == val || *end || v < -1000 || v > 1000)
			return error_msg(err, EINVAL, "invalid number \"%s\" for \"%s\"", val, key);
		sec->has_oom_score_adj = true;
		sec->oom_score_adj = (int) v;
		return 0;
	}
	return 1;
}

static int
spec_set(struct spec *s, const char *key, const char *val, size_t vlen, execd_error_t *err)
{
	unsigned long n;
	if (strcmp(key, KEY_ID) == 0)
		return spec_string(key, val, vlen, &s->id, err);
	if (strcmp(key, KEY_ROOTFS) == 0)
		return spec_string(key, val, vlen, &s->rootfs, err);
	if (strcmp(key, KEY_HOSTNAME) == 0)
		return spec_string(key, val, vlen, &s->hostname, err);
	if (strcmp(key, KEY_STATE_DIR) == 0)
		return spec_string(key, val, vlen, &s->state_dir, err);
	if (strcmp(key, KEY_LOG_PATH) == 0)
		return spec_string(key, val, vlen, &s->log_path, err);
	if (strcmp(key, KEY_LOG_MAX_SIZE) == 0)
		return spec_uint(key, val, ULONG_MAX, &s->log_max_size, err);
	if (strcmp(key, KEY_LOG_MAX_FILE) == 0)
		return spec_uint(key, val, 1000, &s->log_max_file, err);
	if (strcmp(key, KEY_CWD) == 0)
		return spec_string(key, val, vlen, &s->cwd, err);
	if (strcmp(key, KEY_ARG) == 0)
		return spec_list_item(key, val, vlen, &s->args, err);
	if (strcmp(key, KEY_ENV) == 0)
		return spec_list_item(key, val, vlen, &s->env, err);
	if (strcmp(key, KEY_MOUNT) == 0)
		return spec_mount(s, val, vlen, err);
	if (strcmp(key, KEY_JOIN_CGROUP) == 0)
		return spec_list_item(key, val, vlen, &s->join_cgroups, err);
	if (strcmp(key, KEY_SECCOMP_BPF) == 0)
		return spec_seccomp_bpf(&s->sec, val, vlen, err);
	if (strlen(val) != vlen)
		return error_msg(err, EINVAL, "value of \"%s\" contains a NUL byte", key);
	if (strcmp(key, KEY_NAMESPACE) == 0)
		return spec_namespace(val, &s->clone_flags, err);
	if (strcmp(key, KEY_JOIN) == 0)
		return spec_join(s, val, err);
	if (strcmp(key, KEY_TTY) == 0)
		return spec_bool(key, val, &s->tty, err);
	if (strcmp(key, KEY_STDIN) == 0)
		return spec_bool(key, val, &s->open_stdin, err);
	if (strcmp(key, KEY_READONLY_ROOTFS) == 0)
		return spec_bool(key, val, &s->readonly_rootfs, err);
	if (strcmp(key, KEY_OUTPUT) == 0) {
		bool output;
		if (spec_bool(key, val, &output, err) < 0)
			return -1;
		s->mute_daemon = !output;
		return 0;
	}
	if (strcmp(key, KEY_ATTACH) == 0) {
		if (spec_uint(key, val, ATTACH_STDOUT | ATTACH_STDERR | ATTACH_RAW | ATTACH_WAIT, &n, err) < 0)
			return -1;
		if (s->nattach == MAX_CLIENTS - 1)
			return error_msg(err, E2BIG, "more than %d attach sinks", MAX_CLIENTS - 1);
		s->attach_flags[s->nattach++] = (int) n;
		return 0;
	}
	if (strcmp(key, KEY_EXEC_PID) == 0 || strcmp(key, KEY_CONSOLE_HEIGHT) == 0 || strcmp(key, KEY_CONSOLE_WIDTH) == 0) {
		bool exec_pid = strcmp(key, KEY_EXEC_PID) == 0;
		if (spec_uint(key, val, exec_pid ? INT_MAX : UINT16_MAX, &n, err) < 0)
			return -1;
		if (exec_pid)
			s->exec_pid = (pid_t) n;
		else if (strcmp(key, KEY_CONSOLE_HEIGHT) == 0)
			s->console_height = n;
		else
			s->console_width = n;
		return 0;
	}
	if (strcmp(key, KEY_UID) == 0 || strcmp(key, KEY_GID) == 0 || strcmp(key, KEY_GROUP) == 0) {
		if (spec_uint(key, val, UINT32_MAX - 1, &n, err) < 0)
			return -1;
		if (strcmp(key, KEY_UID) == 0)
			s->uid = (uid_t) n;
		else if (strcmp(key, KEY_GID) == 0)
			s->gid = (gid_t) n;
		else {
			s->groups = xrealloc(s->groups, (s->ngroups + 1) * sizeof *s->groups);
			s->groups[s->ngroups++] = (gid_t) n;
		}
		return 0;
	}
	int r = spec_security(&s->sec, key, val, err);
	if (r <= 0)
		return r;
	return error_msg(err, EINVAL, "unknown key \"%s\"", key);
}

static int
spec_validate(const struct spec *s, execd_error_t *err)
{
	if (s->rootfs == NULL || s->rootfs[0] != '/')
		return error_msg(err, EINVAL, "rootfs must be an absolute path");
	if (s->state_dir == NULL || s->state_dir[0] != '/')
		return error_msg(err, EINVAL, "state_dir must be an absolute path");
	if (s->args.n == 0)   /* an empty arg0 is looked up, and not found, as runc does */
		return error_msg(err, EINVAL, "no command specified");
	if (s->cwd[0] != '/')
		return error_msg(err, EINVAL, "cwd \"%s\" is not an absolute path", s->cwd);
	if (!s->exec_pid && !(s->clone_flags & CLONE_NEWNS))
		return error_msg(err, EINVAL, "the mnt namespace is required");
	for (size_t i = 0; i < s->nmounts; i++)
		if (s->mounts[i].destination[0] != '/')
			return error_msg(err, EINVAL, "mount destination \"%s\" is not absolute", s->mounts[i].destination);
	return 0;
}

static int
read_hello(struct spec_reader *rd, execd_error_t *err)
{
	struct record r;
	if (read_record(rd, &r, err) < 0)
		return -1;
	cleanup_free char *payload = r.payload;
	if (r.type != F_HELLO || r.len != 4)
		return error_msg(err, EPROTO, "the first record must be HELLO with a version");
	uint32_t version = get_u32(payload);
	if (version != PROTOCOL_VERSION)
		return error_msg(err, EPROTO, "protocol version %u is not supported (execd speaks %d)", version,
				 PROTOCOL_VERSION);
	return 0;
}

/* A SPEC record with its key's NUL, or SPEC_END. */
static int
read_spec_frame(struct spec_reader *rd, struct record *r, execd_error_t *err)
{
	if (read_record(rd, r, err) < 0)
		return -1;
	if (r->type == F_SPEC_END)
		return 0;
	if (r->type != F_SPEC) {
		free(r->payload);
		return error_msg(err, EPROTO, "unexpected record type %u", r->type);
	}
	if (strnlen(r->payload, r->len) == r->len) {
		free(r->payload);
		return error_msg(err, EPROTO, "record without a NUL after its key");
	}
	return 0;
}

int
read_spec_records(struct spec_reader *rd, struct spec *s, execd_error_t *err)
{
	if (read_hello(rd, err) < 0)
		return error_wrap(err, "read spec");
	s->cwd = xstrndup("/", 1);
	for (int i = 0; i < MAX_SPEC_RECORDS; i++) {
		struct record r;
		if (read_spec_frame(rd, &r, err) < 0)
			return error_wrap(err, "read spec");
		cleanup_free char *payload = r.payload;
		if (r.type == F_SPEC_END)
			return 0;
		size_t klen = strlen(payload);
		if (spec_set(s, payload, payload + klen + 1, r.len - klen - 1, err) < 0)
			return error_wrap(err, "spec");
	}
	error_msg(err, E2BIG, "more than %d records", MAX_SPEC_RECORDS);
	return error_wrap(err, "read spec");
}

int
read_spec(struct spec_reader *rd, struct spec *s, execd_error_t *err)
{
	if (read_spec_records(rd, s, err) < 0)
		return -1;
	if (rd->nfds != s->nattach) {
		error_msg(err, EPROTO, "%zu attach records but %zu descriptors", s->nattach, rd->nfds);
		return error_wrap(err, "read spec");
	}
	if (spec_validate(s, err) < 0)
		return error_wrap(err, "spec");
	return 0;
}
