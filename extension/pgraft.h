/*
 * pgraft.h -- shared declarations of the pgraft extension's C part.
 *
 * The C part is deliberately small: it registers the pgraft.* settings, runs
 * a supervisor background worker that fork/execs the Python Raft node and
 * restarts it when it dies, publishes the supervisor's view of that child in
 * shared memory, and offers pgraft_call(), an interruptible client of the
 * node's Unix control socket.  Every decision about Raft is made in Python.
 */
#ifndef PGRAFT_H
#define PGRAFT_H

#include "postgres.h"

#include "storage/spin.h"
#include "utils/timestamp.h"

/* Supervisor states, as reported by pgraft_get_worker_state(). */
typedef enum PgraftWorkerState
{
	PGRAFT_STOPPED = 0,			/* no node and none coming (error or shutdown) */
	PGRAFT_STARTING,			/* node forked, control socket not answering yet */
	PGRAFT_RUNNING,				/* node's control socket accepts connections */
	PGRAFT_RESTARTING,			/* node died; waiting for the backoff to elapse */
	PGRAFT_DISABLED				/* pgraft.worker_enabled = off */
} PgraftWorkerState;

#define PGRAFT_REASON_LEN 256

/* Written by the supervisor only; read by backends under the spinlock. */
typedef struct PgraftShared
{
	slock_t		mutex;
	PgraftWorkerState state;
	int			supervisor_pid;
	int			child_pid;		/* 0 when no child */
	int64		restarts;		/* children started after the first one */
	TimestampTz child_started;	/* 0 when never started */
	TimestampTz last_exit_time; /* 0 when no child ever exited */
	char		last_exit[PGRAFT_REASON_LEN];	/* why the last child ended /
												 * why none runs */
} PgraftShared;

extern PgraftShared *pgraft_shared;

/* Settings (pgraft.c). */
extern int	pgraft_node_id;
extern char *pgraft_address;
extern int	pgraft_port;
extern char *pgraft_cluster_name;
extern int	pgraft_heartbeat_interval;
extern int	pgraft_election_timeout;
extern bool pgraft_worker_enabled;
extern bool pgraft_debug_enabled;
extern int	pgraft_health_period_ms;
extern char *pgraft_python;
extern char *pgraft_data_dir;
extern char *pgraft_secret_file;
extern char *pgraft_tls_cert;
extern char *pgraft_tls_key;
extern char *pgraft_tls_ca;
extern int	pgraft_max_entry_bytes;
extern int	pgraft_snapshot_threshold;
extern int	pgraft_log_retention;

/* Name of the control socket, relative to the data directory. */
#define PGRAFT_SOCKET_NAME "pgraft.sock"

extern const char *pgraft_state_name(PgraftWorkerState state);

/* supervisor.c */
extern PGDLLEXPORT void pgraft_supervisor_main(Datum main_arg);

#endif							/* PGRAFT_H */
