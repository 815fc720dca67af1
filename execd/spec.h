/* The container spec: what the daemon's SPEC records say (protocol.h), parsed and checked. */
#ifndef EXECD_SPEC_H
#define EXECD_SPEC_H

#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "error.h"
#include "frames.h"
#include "protocol.h"
#include "util.h"

struct mount_entry {
	char *destination, *type, *source, *options;
};

struct seccomp_rule {
	uint32_t action;
	int syscall;          /* resolved by libseccomp; names unknown on this arch are dropped, as runc does */
	unsigned int nargs;
	struct scmp_arg_cmp args[6];
};

struct device_node {
	char kind;            /* 'c' or 'b' */
	unsigned int major, minor;
	mode_t mode;
	char *path;           /* inside the container */
};

/* what the container's process may do (caps, seccomp, paths, limits): see security.h and rootfs.h */
struct security {
	bool has_caps, no_new_privs, privileged, has_seccomp;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	struct strv masked, readonly, sysctls, seccomp_arches;
	uint32_t seccomp_default;
	struct seccomp_rule *rules;
	size_t nrules;
	struct sock_filter *bpf;   /* the filter the daemon had compiled (`execd --seccomp-bpf`) instead of rules */
	size_t bpf_len;            /* instructions */
	struct { int resource; struct rlimit limit; } *rlimits;
	size_t nrlimits;
	struct device_node *devices;
	size_t ndevices;
	unsigned long long shm_size;   /* bytes of /dev/shm; 0 keeps the default */
	bool has_oom_score_adj;
	int oom_score_adj;             /* -1000..1000 */
};

struct ns_join {
	int flag;    /* CLONE_NEWNET, ... */
	char *path;  /* /proc/PID/ns/net, a bind-mounted netns file, ... */
	int fd;
};

struct spec {
	char *id, *rootfs, *hostname, *state_dir, *log_path, *cwd;
	unsigned long log_max_size, log_max_file;   /* json-file rotation; max size 0: none */
	struct strv args, env;
	gid_t *groups;
	size_t ngroups;
	uid_t uid;
	gid_t gid;
	bool tty, open_stdin, readonly_rootfs;
	int clone_flags;
	struct mount_entry *mounts;
	size_t nmounts;
	struct ns_join joins[6];   /* existing namespaces to enter instead of new ones */
	size_t njoins;
	/* tty and exec mode */
	pid_t exec_pid;                    /* exec mode: run in the namespaces of this container init */
	struct strv join_cgroups;          /* exec mode: cgroup directories to enter (host paths) */
	unsigned long console_height, console_width;   /* initial pty size; 0 = leave the default */
	int console_sock;                  /* runtime: the child's end for passing the pty master back */
	struct security sec;               /* caps, seccomp, masked paths, rlimits, sysctls, devices */
	int attach_flags[MAX_CLIENTS];     /* attach sinks: enum attach_flags, one per descriptor passed */
	size_t nattach;
	bool mute_daemon;                  /* the daemon wants no OUTPUT frames until it says so */
};

/* CLONE_NEW* of a namespace name ("net"), 0 when unknown. */
int namespace_flag(const char *name, size_t len);

/* HELLO and the SPEC records up to SPEC_END, unchecked as a whole (--seccomp-bpf reads only these). */
int read_spec_records(struct spec_reader *rd, struct spec *s, execd_error_t *err);

/* The whole spec of a container start, checked. */
int read_spec(struct spec_reader *rd, struct spec *s, execd_error_t *err);

#endif
