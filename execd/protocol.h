/*
 * The wire contract between pyd's daemon and execd: the one source of every number and key the two sides
 * share. docs/execd-protocol.md describes the frames, payloads and spec records; the daemon's copy of
 * these values (pyd/daemon/runtime/execdriver.py) is checked against this file by
 * tests/unit/test_execd_protocol.py, which reads the enum entries and #defines below: keep one per line.
 */
#ifndef EXECD_PROTOCOL_H
#define EXECD_PROTOCOL_H

enum {
	PROTOCOL_VERSION = 1,
	HEADER_SIZE = 8,           /* u32 length, u16 type, u16 reserved (0); big endian */
	MAX_RECORD = 1 << 20,      /* largest payload */
	MAX_SPEC_RECORDS = 65536,  /* SPEC frames of one spec */
	MAX_CLIENTS = 16,          /* connections served at once: daemons and attach sinks */
};

enum frame_type {
	F_HELLO = 1,          /* daemon -> execd */
	F_SPEC = 2,           /* daemon -> execd */
	F_SPEC_END = 3,       /* daemon -> execd */
	F_STARTED = 4,        /* execd -> daemon */
	F_ERROR = 5,          /* execd -> daemon */
	F_OUTPUT = 6,         /* execd -> daemon */
	F_STDIN = 7,          /* daemon -> execd */
	F_STDIN_CLOSE = 8,    /* daemon -> execd */
	F_KILL = 9,           /* daemon -> execd */
	F_RESIZE = 10,        /* daemon -> execd */
	F_EXIT = 11,          /* execd -> daemon */
	F_OUTPUT_MODE = 12,   /* daemon -> execd */
};

/* The value of an attach record: what execd writes to the descriptor passed with it. */
enum attach_flags {
	ATTACH_STDOUT = 1,
	ATTACH_STDERR = 2,
	ATTACH_RAW = 4,
	/* a `wait` response whose head the daemon sent: when the container exits and the daemon that
	 * started it is gone, execd ends the response ({"StatusCode":N,"Error":null} as the last chunk) */
	ATTACH_WAIT = 8,
};

/* Spec keys (SPEC frames: key NUL value). "list": the key may repeat. */
#define KEY_ID "id"
#define KEY_ROOTFS "rootfs"
#define KEY_HOSTNAME "hostname"
#define KEY_STATE_DIR "state_dir"
#define KEY_LOG_PATH "log_path"
#define KEY_LOG_MAX_SIZE "log_max_size"
#define KEY_LOG_MAX_FILE "log_max_file"
#define KEY_CWD "cwd"
#define KEY_UID "uid"
#define KEY_GID "gid"
#define KEY_GROUP "group"                   /* list */
#define KEY_ARG "arg"                       /* list */
#define KEY_ENV "env"                       /* list */
#define KEY_TTY "tty"
#define KEY_STDIN "stdin"
#define KEY_NAMESPACE "namespace"           /* list */
#define KEY_JOIN "join"                     /* list */
#define KEY_READONLY_ROOTFS "readonly_rootfs"
#define KEY_MOUNT "mount"                   /* list */
#define KEY_CONSOLE_HEIGHT "console_height"
#define KEY_CONSOLE_WIDTH "console_width"
#define KEY_EXEC_PID "exec_pid"
#define KEY_JOIN_CGROUP "join_cgroup"       /* list */
#define KEY_OUTPUT "output"
#define KEY_ATTACH "attach"                 /* list */
#define KEY_CAPS "caps"
#define KEY_NO_NEW_PRIVS "no_new_privs"
#define KEY_PRIVILEGED "privileged"
#define KEY_MASKED_PATH "masked_path"       /* list */
#define KEY_READONLY_PATH "readonly_path"   /* list */
#define KEY_SYSCTL "sysctl"                 /* list */
#define KEY_SECCOMP_DEFAULT "seccomp_default"
#define KEY_SECCOMP_ARCH "seccomp_arch"     /* list */
#define KEY_SECCOMP_RULE "seccomp_rule"     /* list */
#define KEY_SECCOMP_BPF "seccomp_bpf"
#define KEY_RLIMIT "rlimit"                 /* list */
#define KEY_DEVICE "device"                 /* list */
#define KEY_SHM_SIZE "shm_size"
#define KEY_OOM_SCORE_ADJ "oom_score_adj"

/* Files in the state directory. */
#define CONTROL_SOCKET "execd.sock"
#define PID_FILE "pid"
#define EXIT_FILE "exit"

#endif
