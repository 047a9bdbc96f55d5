/*
 * client.c -- pgraft_call(op, args): the SQL-callable client of the node's
 * control socket (docs/contracts.md section 3).
 *
 * Each backend keeps one connection to "pgraft.sock" (relative: backends run
 * in the data directory, and sun_path is short) open across calls: a call
 * sends one JSON line {"op": ..., "args": ...} and reads one line back.  Every
 * wait goes through WaitLatchOrSocket() followed by CHECK_FOR_INTERRUPTS(), so
 * query cancel and statement_timeout interrupt a call that waits for a commit.
 *
 * Reuse is cancel-safe: the connection is kept only after a call read exactly
 * one complete reply line and nothing more.  Any error while sending or
 * receiving (a cancel, a timeout, a closed or misbehaving peer) closes it in
 * PG_CATCH, so a reply still in flight is never read by a later call.  Before
 * reusing it, a call peeks at the socket without waiting: end of file or an
 * error (the node restarted or closed it) or unexpected bytes mean a new
 * connection.  A request is never re-sent once any byte of it may have
 * reached the node (no duplicate appends); only a send that fails at once on
 * a reused connection because the peer is gone (EPIPE/ECONNRESET, nothing
 * delivered) is retried, once, on a new connection.
 *
 * Replies: {"ok": value} returns value as jsonb; {"error": {"code": "XXXXX",
 * "message": "..."}} raises an ERROR with that SQLSTATE.  A node that is not
 * running raises 08006 with a hint; a reply that is not a complete JSON line
 * of at most MAX_REPLY bytes, or not one of those two shapes, raises an error
 * that names the operation.
 *
 * pgraft_call_status() is the same client restricted to the read-only
 * operations, so that it can be granted to monitoring roles.
 */
#include "pgraft.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#define MAX_REPLY (64 * 1024 * 1024)
#define READ_CHUNK 65536

PG_FUNCTION_INFO_V1(pgraft_call);
PG_FUNCTION_INFO_V1(pgraft_call_status);

static const char *const read_only_ops[] = {
	"ping", "cluster_status", "nodes", "term", "leader", "is_leader",
	"log_commit", "log_apply", "log_read", "log_stats", "replication_status",
	"queue_status", "sync_with_leader", "kv_get", NULL
};

static void
pg_attribute_noreturn()
node_unreachable(const char *op, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("pgraft node is not reachable"),
			 errdetail("Operation \"%s\": %s.", op, what),
			 errhint("Check SELECT pgraft_get_worker_state() and the server log; the node may be starting, restarting or stopped.")));
}

/* Wait until the socket is ready for `events`, honouring interrupts. */
static void
wait_socket(pgsocket fd, int events)
{
	(void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events,
							 fd, -1L, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

static pgsocket
connect_node(const char *op)
{
	struct sockaddr_un addr;
	pgsocket	fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		ereport(ERROR, (errcode_for_socket_access(),
						errmsg("pgraft: could not create socket: %m")));
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strlcpy(addr.sun_path, PGRAFT_SOCKET_NAME, sizeof(addr.sun_path));
	if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		node_unreachable(op, strerror(save_errno));
	}
	return fd;
}

/*
 * Send the whole request.  Returns false only when nothing was sent because
 * the peer of a reused connection is gone (the caller may reconnect once).
 */
static bool
send_all(pgsocket fd, const char *op, const char *data, size_t len, bool reused)
{
	size_t		sent = 0;

	while (sent < len)
	{
		ssize_t		n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);

		if (n > 0)
			sent += n;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			wait_socket(fd, WL_SOCKET_WRITEABLE);
		else if (reused && sent == 0 && n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return false;
		else
			node_unreachable(op, n < 0 ? strerror(errno) : "connection closed");
	}
	return true;
}

/*
 * Read up to the first newline; the newline is replaced by NUL.  Returns false
 * if bytes followed the newline (the connection must not be reused then).
 */
static bool
recv_line(pgsocket fd, const char *op, StringInfo buf)
{
	for (;;)
	{
		ssize_t		n;
		char	   *nl;

		enlargeStringInfo(buf, READ_CHUNK);
		n = recv(fd, buf->data + buf->len, READ_CHUNK, 0);
		if (n > 0)
		{
			nl = memchr(buf->data + buf->len, '\n', n);
			buf->len += n;
			buf->data[buf->len] = '\0';
			if (nl != NULL)
			{
				bool		clean = (nl == buf->data + buf->len - 1);

				*nl = '\0';
				buf->len = nl - buf->data;
				return clean;
			}
			if (buf->len > MAX_REPLY)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("pgraft: reply of the node to \"%s\" exceeds %d bytes", op, MAX_REPLY)));
		}
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			wait_socket(fd, WL_SOCKET_READABLE);
		else
			node_unreachable(op, n < 0 ? strerror(errno) :
							 "connection closed before a complete reply");
	}
}

/* This backend's connection to the node, or PGINVALID_SOCKET. */
static pgsocket node_fd = PGINVALID_SOCKET;

static void
drop_connection(void)
{
	if (node_fd != PGINVALID_SOCKET)
	{
		close(node_fd);
		node_fd = PGINVALID_SOCKET;
	}
}

/* Is the kept connection still usable: no EOF, no error, no stray bytes? */
static bool
connection_idle(pgsocket fd)
{
	char		byte;
	ssize_t		n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Exchange one request line for one reply line. */
static char *
exchange(const char *op, const char *request, size_t len)
{
	StringInfoData reply;
	bool		reused;
	volatile bool clean = false;

	if (node_fd != PGINVALID_SOCKET && !connection_idle(node_fd))
		drop_connection();
	reused = node_fd != PGINVALID_SOCKET;
	if (!reused)
		node_fd = connect_node(op);

	initStringInfo(&reply);
	PG_TRY();
	{
		if (!send_all(node_fd, op, request, len, reused))
		{
			drop_connection();
			node_fd = connect_node(op);
			(void) send_all(node_fd, op, request, len, false);
		}
		clean = recv_line(node_fd, op, &reply);
	}
	PG_CATCH();
	{
		drop_connection();
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (!clean)
		drop_connection();
	return reply.data;
}

static void
reply_context(void *arg)
{
	errcontext("reply of the pgraft node to \"%s\"", (const char *) arg);
}

static void
pg_attribute_noreturn()
malformed(const char *op, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg("pgraft: malformed reply of the node to \"%s\": %s", op, what)));
}

static char *
string_field(JsonbContainer *obj, const char *key)
{
	JsonbValue	v;

	if (getKeyJsonValueFromContainer(obj, key, strlen(key), &v) == NULL ||
		v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

static bool
valid_sqlstate(const char *code)
{
	int			i;

	if (code == NULL || strlen(code) != 5)
		return false;
	for (i = 0; i < 5; i++)
		if (!((code[i] >= '0' && code[i] <= '9') || (code[i] >= 'A' && code[i] <= 'Z')))
			return false;
	return true;
}

static Jsonb *
decode_reply(const char *op, char *line)
{
	ErrorContextCallback ctx;
	Jsonb	   *reply;
	JsonbValue	v;
	char	   *code;
	char	   *message;

	ctx.callback = reply_context;
	ctx.arg = (void *) op;
	ctx.previous = error_context_stack;
	error_context_stack = &ctx;
	reply = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(line)));
	error_context_stack = ctx.previous;

	if (!JB_ROOT_IS_OBJECT(reply))
		malformed(op, "not a JSON object");
	if (getKeyJsonValueFromContainer(&reply->root, "ok", 2, &v) != NULL)
		return JsonbValueToJsonb(&v);
	if (getKeyJsonValueFromContainer(&reply->root, "error", 5, &v) == NULL ||
		v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
		malformed(op, "neither \"ok\" nor an \"error\" object");

	code = string_field(v.val.binary.data, "code");
	message = string_field(v.val.binary.data, "message");
	if (message == NULL)
		message = "no message";
	if (!valid_sqlstate(code))
		code = "XX000";
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4])),
			 errmsg("%s", message)));
	pg_unreachable();
}

static Datum
call(FunctionCallInfo fcinfo, bool read_only)
{
	StringInfoData req;
	char	   *op;
	char	   *line;
	const char *const *p;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("pgraft: operation must not be null")));
	op = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (read_only)
	{
		for (p = read_only_ops; *p != NULL; p++)
			if (strcmp(*p, op) == 0)
				break;
		if (*p == NULL)
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							errmsg("pgraft: operation \"%s\" is not read-only; use pgraft_call", op)));
	}

	initStringInfo(&req);
	appendStringInfoString(&req, "{\"op\": ");
	escape_json(&req, op);
	appendStringInfoString(&req, ", \"args\": ");
	if (PG_ARGISNULL(1))
		appendStringInfoString(&req, "{}");
	else
	{
		Jsonb	   *args = PG_GETARG_JSONB_P(1);

		if (!JB_ROOT_IS_OBJECT(args))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("pgraft: args must be a JSON object")));
		(void) JsonbToCString(&req, &args->root, VARSIZE(args));
	}
	appendStringInfoString(&req, "}\n");

	line = exchange(op, req.data, req.len);
	pfree(req.data);
	PG_RETURN_JSONB_P(decode_reply(op, line));
}

Datum
pgraft_call(PG_FUNCTION_ARGS)
{
	return call(fcinfo, false);
}

Datum
pgraft_call_status(PG_FUNCTION_ARGS)
{
	return call(fcinfo, true);
}
