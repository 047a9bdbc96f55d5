/*
 * supervisor.c -- the "pgraft supervisor" background worker.
 *
 * Theory of operation.  The supervisor owns exactly one child: the Python
 * Raft node, started as `<pgraft.python> -m pgraft.node --config
 * <data_dir>/node.json --parent-pid <supervisor pid>`.  Before each start it
 * writes node.json (docs/contracts.md section 2) from the pgraft.* settings.
 * The child gets its own session (the postmaster signals the worker's whole
 * process group, and the node must stop on its own terms), PR_SET_PDEATHSIG
 * (it dies with us even if we are SIGKILLed), default signal handlers, an
 * empty signal mask and no inherited descriptors except stdout/stderr, which
 * lead to the server log.
 *
 * The main loop waits on the latch (woken by SIGCHLD, SIGHUP, SIGTERM) with a
 * timeout, reaps the child without blocking, and restarts a dead child after
 * a backoff that starts at 1 s and doubles up to 30 s (reset once a child
 * has lived longer than 30 s).  A child is STARTING until its control socket
 * accepts a connection, then RUNNING.  On reload the supervisor rewrites
 * node.json and forwards SIGHUP (deferred until RUNNING: before the node has
 * installed its handler SIGHUP would kill it).  On SIGTERM or postmaster
 * death it sends SIGTERM, waits a grace period, then SIGKILLs.
 *
 * A bgworker that exits with status 0 is never restarted, so the supervisor
 * always leaves with proc_exit(1).  Settings that cannot work (no Raft port,
 * Raft port equal to PostgreSQL's) leave it idle in state STOPPED with the
 * reason in shared memory and in the server log.
 */
#include "pgraft.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/json.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define STOP_GRACE_MS 10000
#define POLL_MS 100

static volatile sig_atomic_t got_sigterm = false;

static pid_t child = 0;
static TimestampTz child_started = 0;
static TimestampTz next_start = 0;
static int	backoff_ms = BACKOFF_MIN_MS;
static bool hup_pending = false;
static bool ever_started = false;
static PgraftWorkerState state = PGRAFT_STOPPED;
static const char *problem = NULL;	/* why the node cannot run, or NULL */
static char data_dir[MAXPGPATH];
static char config_path[MAXPGPATH];
static char socket_path[MAXPGPATH];

static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
handle_sigchld(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SetLatch(MyLatch);
	errno = save_errno;
}

/* Publish the state; reason NULL keeps the previous one. */
static void
publish(PgraftWorkerState new_state, const char *reason)
{
	state = new_state;
	SpinLockAcquire(&pgraft_shared->mutex);
	pgraft_shared->state = new_state;
	pgraft_shared->child_pid = (int) child;
	pgraft_shared->child_started = child ? child_started : 0;
	if (reason != NULL)
		strlcpy(pgraft_shared->last_exit, reason, PGRAFT_REASON_LEN);
	SpinLockRelease(&pgraft_shared->mutex);
}

static void
absolute_path(char *dst, const char *path)
{
	if (path[0] == '/' || path[0] == '\0')
		strlcpy(dst, path, MAXPGPATH);
	else
		snprintf(dst, MAXPGPATH, "%s/%s", DataDir, path);
}

/* Why the node cannot run with these settings, or NULL. */
static const char *
config_problem(void)
{
	static char why[PGRAFT_REASON_LEN];

	if (pgraft_port == 0)
		return "pgraft.port is not set: choose a free TCP port for the Raft node";
	if (pgraft_port == PostPortNumber)
	{
		snprintf(why, sizeof(why),
				 "pgraft.port (%d) equals PostgreSQL's port: the Raft node needs a port of its own",
				 pgraft_port);
		return why;
	}
	if (pgraft_address == NULL || pgraft_address[0] == '\0')
		return "pgraft.address is empty";
	if (pgraft_cluster_name == NULL || pgraft_cluster_name[0] == '\0')
		return "pgraft.cluster_name is empty";
	if (pgraft_election_timeout <= pgraft_heartbeat_interval)
		return "pgraft.election_timeout must be larger than pgraft.heartbeat_interval";
	return NULL;
}

static void
append_field(StringInfo b, const char *key, const char *value)
{
	appendStringInfo(b, ", \"%s\": ", key);
	escape_json(b, value);
}

static void
append_path_field(StringInfo b, const char *key, const char *value)
{
	char		path[MAXPGPATH];

	absolute_path(path, value);
	append_field(b, key, path);
}

/* Write node.json atomically; false (after logging) on failure. */
static bool
write_node_config(void)
{
	StringInfoData b;
	char		tmp[MAXPGPATH];
	int			fd;
	bool		ok;

	initStringInfo(&b);
	appendStringInfo(&b, "{\"node_id\": %d", pgraft_node_id);
	append_field(&b, "cluster_name", pgraft_cluster_name);
	append_field(&b, "address", pgraft_address);
	appendStringInfo(&b, ", \"port\": %d", pgraft_port);
	append_field(&b, "data_dir", data_dir);
	append_field(&b, "control_socket", socket_path);
	appendStringInfo(&b, ", \"heartbeat_ms\": %d, \"election_timeout_ms\": %d, \"debug\": %s",
					 pgraft_heartbeat_interval, pgraft_election_timeout,
					 pgraft_debug_enabled ? "true" : "false");
	append_path_field(&b, "secret_file", pgraft_secret_file);
	append_path_field(&b, "tls_cert", pgraft_tls_cert);
	append_path_field(&b, "tls_key", pgraft_tls_key);
	append_path_field(&b, "tls_ca", pgraft_tls_ca);
	appendStringInfo(&b, ", \"pg_port\": %d, \"max_entry_bytes\": %d"
					 ", \"snapshot_threshold\": %d, \"log_retention\": %d"
					 ", \"health_period_ms\": %d, \"bootstrap\": false}\n",
					 PostPortNumber, pgraft_max_entry_bytes, pgraft_snapshot_threshold,
					 pgraft_log_retention, pgraft_health_period_ms);

	snprintf(tmp, sizeof(tmp), "%s.tmp", config_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && write(fd, b.data, b.len) == b.len && fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (ok && rename(tmp, config_path) != 0)
		ok = false;
	if (!ok)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("pgraft: could not write node configuration \"%s\": %m",
						config_path)));
	pfree(b.data);
	return ok;
}

/* In the forked child: detach from the server and become the node. */
static void
pg_attribute_noreturn()
exec_node(char **argv, pid_t parent)
{
	sigset_t	none;
	char		msg[MAXPGPATH + 128];
	long		maxfd;
	int			fd;
	int			sig;
	int			len;

	(void) setsid();
#ifdef __linux__
	(void) prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
	if (getppid() != parent)
		_exit(1);
	for (sig = 1; sig < NSIG; sig++)
		(void) signal(sig, SIG_DFL);
	sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);

	fd = open("/dev/null", O_RDONLY);
	if (fd > 0)
	{
		(void) dup2(fd, 0);
		(void) close(fd);
	}
	maxfd = sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	for (fd = 3; fd < maxfd; fd++)
		(void) close(fd);

	execv(argv[0], argv);
	len = snprintf(msg, sizeof(msg), "pgraft: could not execute \"%s\": %s\n",
				   argv[0], strerror(errno));
	if (len > 0 && write(2, msg, Min((size_t) len, sizeof(msg) - 1)) < 0)
		_exit(127);
	_exit(127);
}

static void
start_child(void)
{
	char	   *argv[8];
	char		pidbuf[32];
	sigset_t	all;
	sigset_t	saved;
	pid_t		pid;
	pid_t		self = getpid();

	if (!write_node_config())
	{
		next_start = GetCurrentTimestamp() + (TimestampTz) backoff_ms * 1000;
		publish(PGRAFT_RESTARTING, "could not write node.json (see the server log)");
		return;
	}
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int) self);
	argv[0] = pgraft_python;
	argv[1] = "-m";
	argv[2] = "pgraft.node";
	argv[3] = "--config";
	argv[4] = config_path;
	argv[5] = "--parent-pid";
	argv[6] = pidbuf;
	argv[7] = NULL;

	fflush(NULL);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	pid = fork();
	if (pid == 0)
		exec_node(argv, self);
	sigprocmask(SIG_SETMASK, &saved, NULL);

	if (pid < 0)
	{
		ereport(LOG, (errmsg("pgraft: could not fork the Raft node: %m")));
		next_start = GetCurrentTimestamp() + (TimestampTz) backoff_ms * 1000;
		publish(PGRAFT_RESTARTING, "fork failed");
		return;
	}
	child = pid;
	child_started = GetCurrentTimestamp();
	hup_pending = false;
	if (ever_started)
	{
		SpinLockAcquire(&pgraft_shared->mutex);
		pgraft_shared->restarts++;
		SpinLockRelease(&pgraft_shared->mutex);
	}
	ever_started = true;
	ereport(LOG, (errmsg("pgraft: started Raft node (pid %d): %s -m pgraft.node --config %s",
						 (int) pid, pgraft_python, config_path)));
	publish(PGRAFT_STARTING, NULL);
}

static void
describe_exit(char *buf, size_t len, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d%s", WEXITSTATUS(status),
				 WEXITSTATUS(status) == 127 ? " (could not execute pgraft.python)" :
				 WEXITSTATUS(status) == 2 ? " (configuration rejected, see the server log)" : "");
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "ended with wait status %d", status);
}

static void
record_exit(int status)
{
	char		why[PGRAFT_REASON_LEN];

	describe_exit(why, sizeof(why), status);
	child = 0;
	SpinLockAcquire(&pgraft_shared->mutex);
	pgraft_shared->last_exit_time = GetCurrentTimestamp();
	SpinLockRelease(&pgraft_shared->mutex);
	publish(state, why);
}

/* Reap a dead child (non-blocking) and schedule its restart. */
static void
reap_child(void)
{
	int			status = 0;
	pid_t		pid;
	pid_t		old = child;
	TimestampTz now;

	if (child == 0)
		return;
	pid = waitpid(child, &status, WNOHANG);
	if (pid == 0 || (pid < 0 && errno == EINTR))
		return;
	now = GetCurrentTimestamp();
	if (now - child_started > (TimestampTz) BACKOFF_MAX_MS * 1000)
		backoff_ms = BACKOFF_MIN_MS;
	record_exit(pid < 0 ? 0 : status);
	next_start = now + (TimestampTz) backoff_ms * 1000;
	ereport(LOG, (errmsg("pgraft: Raft node (pid %d) %s; restarting it in %d ms",
						 (int) old, pgraft_shared->last_exit, backoff_ms)));
	backoff_ms = Min(backoff_ms * 2, BACKOFF_MAX_MS);
	publish(PGRAFT_RESTARTING, NULL);
}

/* SIGTERM the child, SIGKILL it after grace_ms, and reap it. */
static void
stop_child(int grace_ms)
{
	int			status = 0;
	int			waited = 0;
	pid_t		pid;

	if (child == 0)
		return;
	(void) kill(child, SIGTERM);
	for (;;)
	{
		pid = waitpid(child, &status, WNOHANG);
		if (pid == child || (pid < 0 && errno != EINTR))
			break;
		if (waited >= grace_ms)
		{
			ereport(LOG, (errmsg("pgraft: Raft node (pid %d) did not stop within %d ms; killing it",
								 (int) child, grace_ms)));
			(void) kill(child, SIGKILL);
			while (waitpid(child, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		pg_usleep(POLL_MS * 1000L);
		waited += POLL_MS;
	}
	record_exit(status);
}

/* Does the node's control socket accept connections yet? */
static bool
socket_accepts(void)
{
	struct sockaddr_un addr;
	int			fd;
	bool		ok;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strlcpy(addr.sun_path, PGRAFT_SOCKET_NAME, sizeof(addr.sun_path));
	ok = connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == 0;
	close(fd);
	return ok;
}

static void
reload(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);

	if (!pgraft_worker_enabled)
	{
		if (state != PGRAFT_DISABLED)
		{
			stop_child(STOP_GRACE_MS);
			publish(PGRAFT_DISABLED, "pgraft.worker_enabled is off");
			ereport(LOG, (errmsg("pgraft: pgraft.worker_enabled is off; Raft node stopped")));
		}
		return;
	}
	if (state == PGRAFT_DISABLED)
	{
		backoff_ms = BACKOFF_MIN_MS;
		next_start = 0;
		if (problem != NULL)
			publish(PGRAFT_STOPPED, problem);
		else
			publish(PGRAFT_RESTARTING, "");
		return;
	}
	if (child == 0)
		return;
	if (pgraft_election_timeout <= pgraft_heartbeat_interval)
	{
		ereport(LOG, (errmsg("pgraft: ignoring reload: pgraft.election_timeout (%d ms) must be larger than pgraft.heartbeat_interval (%d ms)",
							 pgraft_election_timeout, pgraft_heartbeat_interval)));
		return;
	}
	if (!write_node_config())
		return;
	if (state == PGRAFT_RUNNING)
		(void) kill(child, SIGHUP);
	else
		hup_pending = true;
}

void
pgraft_supervisor_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGCHLD, handle_sigchld);
	BackgroundWorkerUnblockSignals();

	if (pgraft_data_dir[0] == '\0')
		snprintf(data_dir, sizeof(data_dir), "%s/pgraft", DataDir);
	else
		absolute_path(data_dir, pgraft_data_dir);
	snprintf(config_path, sizeof(config_path), "%s/node.json", data_dir);
	snprintf(socket_path, sizeof(socket_path), "%s/%s", DataDir, PGRAFT_SOCKET_NAME);
	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
		ereport(LOG, (errcode_for_file_access(),
					  errmsg("pgraft: could not create directory \"%s\": %m", data_dir)));

	SpinLockAcquire(&pgraft_shared->mutex);
	pgraft_shared->supervisor_pid = MyProcPid;
	SpinLockRelease(&pgraft_shared->mutex);

	problem = config_problem();
	if (!pgraft_worker_enabled)
		publish(PGRAFT_DISABLED, "pgraft.worker_enabled is off");
	else if (problem != NULL)
	{
		publish(PGRAFT_STOPPED, problem);
		ereport(LOG, (errmsg("pgraft: not starting the Raft node: %s", problem)));
	}
	else
		publish(PGRAFT_RESTARTING, "");

	while (!got_sigterm)
	{
		long		timeout = 1000;
		int			rc;

		if (state == PGRAFT_STARTING)
			timeout = POLL_MS;
		else if (state == PGRAFT_RESTARTING && child == 0)
		{
			long		secs;
			int			usecs;

			TimestampDifference(GetCurrentTimestamp(), next_start, &secs, &usecs);
			timeout = Max(1, Min(1000, secs * 1000 + usecs / 1000));
		}
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_POSTMASTER_DEATH,
					   timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (rc & WL_POSTMASTER_DEATH)
		{
			stop_child(1000);
			proc_exit(1);
		}
		if (ConfigReloadPending)
			reload();
		reap_child();

		if (child != 0 && state == PGRAFT_STARTING && socket_accepts())
		{
			publish(PGRAFT_RUNNING, NULL);
			ereport(LOG, (errmsg("pgraft: Raft node (pid %d) is running", (int) child)));
			if (hup_pending)
				(void) kill(child, SIGHUP);
			hup_pending = false;
		}
		if (child == 0 && state == PGRAFT_RESTARTING && problem == NULL &&
			GetCurrentTimestamp() >= next_start)
			start_child();
	}

	stop_child(STOP_GRACE_MS);
	publish(PGRAFT_STOPPED, "server shutting down");
	proc_exit(1);
}
