/*
 * pgraft.c -- module initialisation: settings, shared memory, the supervisor
 * background worker's registration, and the two SQL functions that read the
 * supervisor's shared state (so they answer even when the Python node is down).
 *
 * Settings that the running node can apply (timeouts, debug, worker_enabled)
 * are PGC_SIGHUP: the supervisor rewrites node.json and forwards SIGHUP.
 * Everything else is fixed at server start (PGC_POSTMASTER).
 */
#include "pgraft.h"

#include <limits.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

#ifndef PGRAFT_PYTHON
#define PGRAFT_PYTHON "/opt/pgraft/venv/bin/python"
#endif

int			pgraft_node_id = 1;
char	   *pgraft_address = NULL;
int			pgraft_port = 0;
char	   *pgraft_cluster_name = NULL;
int			pgraft_heartbeat_interval = 1000;
int			pgraft_election_timeout = 5000;
bool		pgraft_worker_enabled = true;
bool		pgraft_debug_enabled = false;
int			pgraft_health_period_ms = 5000;
char	   *pgraft_python = NULL;
char	   *pgraft_data_dir = NULL;
char	   *pgraft_secret_file = NULL;
char	   *pgraft_tls_cert = NULL;
char	   *pgraft_tls_key = NULL;
char	   *pgraft_tls_ca = NULL;
int			pgraft_max_entry_bytes = 1024 * 1024;
int			pgraft_snapshot_threshold = 10000;
int			pgraft_log_retention = 5000;

PgraftShared *pgraft_shared = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

void		_PG_init(void);

PG_FUNCTION_INFO_V1(pgraft_get_worker_state);
PG_FUNCTION_INFO_V1(pgraft_get_worker_info);

const char *
pgraft_state_name(PgraftWorkerState state)
{
	switch (state)
	{
		case PGRAFT_STOPPED:
			return "STOPPED";
		case PGRAFT_STARTING:
			return "STARTING";
		case PGRAFT_RUNNING:
			return "RUNNING";
		case PGRAFT_RESTARTING:
			return "RESTARTING";
		case PGRAFT_DISABLED:
			return "DISABLED";
	}
	return "UNKNOWN";
}

static void
pgraft_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(PgraftShared)));
}

static void
pgraft_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pgraft_shared = ShmemInitStruct("pgraft", sizeof(PgraftShared), &found);
	if (!found)
	{
		memset(pgraft_shared, 0, sizeof(PgraftShared));
		SpinLockInit(&pgraft_shared->mutex);
		pgraft_shared->state = PGRAFT_STOPPED;
		strlcpy(pgraft_shared->last_exit, "supervisor not started yet",
				PGRAFT_REASON_LEN);
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
define_settings(void)
{
	DefineCustomIntVariable("pgraft.node_id",
							"Unique identifier of this node in the Raft cluster.",
							NULL, &pgraft_node_id, 1, 1, INT_MAX,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.address",
							   "Address the Raft node listens on and advertises to peers.",
							   NULL, &pgraft_address, "127.0.0.1",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgraft.port",
							"TCP port of the Raft node (must differ from PostgreSQL's port; 0 = not configured).",
							NULL, &pgraft_port, 0, 0, 65535,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.cluster_name",
							   "Name of the Raft cluster; nodes of other clusters are refused.",
							   NULL, &pgraft_cluster_name, "pgraft",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgraft.heartbeat_interval",
							"Interval between leader heartbeats.",
							NULL, &pgraft_heartbeat_interval, 1000, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgraft.election_timeout",
							"Time without a leader after which a follower starts an election.",
							NULL, &pgraft_election_timeout, 5000, 50, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgraft.worker_enabled",
							 "Run the Raft node under the pgraft supervisor.",
							 NULL, &pgraft_worker_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgraft.debug_enabled",
							 "Log the Raft node's decisions in detail.",
							 NULL, &pgraft_debug_enabled, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgraft.health_period_ms",
							"Interval of the node's health checks.",
							NULL, &pgraft_health_period_ms, 5000, 100, 3600000,
							PGC_POSTMASTER, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.python",
							   "Python interpreter that runs the Raft node (python -m pgraft.node).",
							   NULL, &pgraft_python, PGRAFT_PYTHON,
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.data_dir",
							   "Directory of the node's Raft state (empty: pgraft inside the data directory).",
							   NULL, &pgraft_data_dir, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.secret_file",
							   "File holding the cluster's shared secret for peer authentication (empty: none).",
							   NULL, &pgraft_secret_file, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.tls_cert",
							   "TLS certificate of this node for peer connections (empty: no TLS).",
							   NULL, &pgraft_tls_cert, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.tls_key",
							   "TLS private key of this node.",
							   NULL, &pgraft_tls_key, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("pgraft.tls_ca",
							   "CA certificate that peers' certificates must chain to.",
							   NULL, &pgraft_tls_ca, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("pgraft.max_entry_bytes",
							"Largest data accepted by one log append.",
							NULL, &pgraft_max_entry_bytes, 1024 * 1024, 64, 64 * 1024 * 1024,
							PGC_POSTMASTER, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("pgraft.snapshot_threshold",
							"Applied entries after which the node takes a snapshot and compacts its log.",
							NULL, &pgraft_snapshot_threshold, 10000, 1, INT_MAX,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgraft.log_retention",
							"Entries kept in the log behind a snapshot, for slow followers.",
							NULL, &pgraft_log_retention, 5000, 0, INT_MAX,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("pgraft");
#else
	EmitWarningsOnPlaceholders("pgraft");
#endif
}

static void
register_supervisor(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "pgraft", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "pgraft_supervisor_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "pgraft supervisor", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pgraft supervisor", BGW_MAXLEN);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

void
_PG_init(void)
{
	define_settings();

	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pgraft_shmem_request;
#else
	pgraft_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pgraft_shmem_startup;

	register_supervisor();
}

/* Copy of the shared state, or false when pgraft was not preloaded. */
static bool
read_shared(PgraftShared *copy)
{
	if (pgraft_shared == NULL)
		return false;
	SpinLockAcquire(&pgraft_shared->mutex);
	memcpy(copy, pgraft_shared, sizeof(PgraftShared));
	SpinLockRelease(&pgraft_shared->mutex);
	return true;
}

Datum
pgraft_get_worker_state(PG_FUNCTION_ARGS)
{
	PgraftShared s;

	if (!read_shared(&s))
		PG_RETURN_TEXT_P(cstring_to_text("STOPPED"));
	PG_RETURN_TEXT_P(cstring_to_text(pgraft_state_name(s.state)));
}

Datum
pgraft_get_worker_info(PG_FUNCTION_ARGS)
{
	PgraftShared s;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pgraft_get_worker_info must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	memset(nulls, 0, sizeof(nulls));

	if (!read_shared(&s))
	{
		memset(&s, 0, sizeof(s));
		s.state = PGRAFT_STOPPED;
		strlcpy(s.last_exit, "pgraft is not in shared_preload_libraries",
				PGRAFT_REASON_LEN);
	}
	values[0] = CStringGetTextDatum(pgraft_state_name(s.state));
	values[1] = Int32GetDatum(s.child_pid);
	nulls[1] = s.child_pid == 0;
	values[2] = Int32GetDatum(s.supervisor_pid);
	nulls[2] = s.supervisor_pid == 0;
	values[3] = Int64GetDatum(s.restarts);
	values[4] = TimestampTzGetDatum(s.child_started);
	nulls[4] = s.child_started == 0;
	values[5] = TimestampTzGetDatum(s.last_exit_time);
	nulls[5] = s.last_exit_time == 0;
	values[6] = CStringGetTextDatum(s.last_exit);
	nulls[6] = s.last_exit[0] == '\0';

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
