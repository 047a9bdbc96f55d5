-- pgraft 0.1.0: the SQL interface of the Raft node.
--
-- Every function except the two worker-state ones is a thin LANGUAGE sql
-- wrapper over pgraft_call(op, args), the C client of the node's control
-- socket, turning its jsonb reply into the documented types.
--
-- NULL arguments: the wrappers are not STRICT; a NULL reaches the node as a
-- JSON null and the call fails with SQLSTATE 22004 (the one exception is the
-- `expected` argument of pgraft_kv_cas, where NULL means "key absent").
-- Failures are errors; boolean results are true when the action happened.
--
-- Privileges: nothing is executable by PUBLIC.  Read-only functions (status,
-- log reads, waits, kv_get) go through pgraft_call_status(), which refuses
-- mutating operations, and are granted to pg_monitor.  Mutating functions
-- (init, membership, appends, kv writes, debug, leadership transfer) and
-- pgraft_call itself are for superusers and whoever they grant them to.

\echo Use "CREATE EXTENSION pgraft" to load this file. \quit

CREATE FUNCTION pgraft_call(op text, args jsonb DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgraft_call'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgraft_call_status(op text, args jsonb DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgraft_call_status'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgraft_get_worker_state()
RETURNS text
AS 'MODULE_PATHNAME', 'pgraft_get_worker_state'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION pgraft_get_worker_info(
    OUT state text, OUT pid integer, OUT supervisor_pid integer,
    OUT restarts bigint, OUT started_at timestamptz,
    OUT last_exit_at timestamptz, OUT last_exit text)
RETURNS record
AS 'MODULE_PATHNAME', 'pgraft_get_worker_info'
LANGUAGE C VOLATILE STRICT;

CREATE TYPE cluster_status AS (
    node_id integer,
    current_term bigint,
    leader_id bigint,
    state text,
    num_nodes integer,
    messages_processed bigint,
    heartbeats_sent bigint,
    elections_triggered bigint
);

CREATE TYPE node_info AS (
    node_id integer,
    address text,
    port integer,
    is_leader boolean,
    role text,
    state text,
    match_index bigint,
    lag bigint,
    last_contact_ms bigint
);

-- Cluster management ------------------------------------------------------

CREATE FUNCTION pgraft_init()
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('init'))::boolean $$;

CREATE FUNCTION pgraft_add_node(node_id integer, address text, port integer)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('add_node',
        jsonb_build_object('node_id', $1, 'address', $2, 'port', $3)))::boolean $$;

CREATE FUNCTION pgraft_remove_node(node_id integer)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('remove_node',
        jsonb_build_object('node_id', $1)))::boolean $$;

CREATE FUNCTION pgraft_transfer_leadership(node_id integer)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('transfer_leadership',
        jsonb_build_object('node_id', $1)))::boolean $$;

CREATE FUNCTION pgraft_set_debug(enabled boolean)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('set_debug',
        jsonb_build_object('enabled', $1)))::boolean $$;

-- Status ------------------------------------------------------------------

CREATE FUNCTION pgraft_get_cluster_status()
RETURNS cluster_status LANGUAGE sql VOLATILE
AS $$ SELECT * FROM jsonb_populate_record(NULL::@extschema@.cluster_status,
        @extschema@.pgraft_call_status('cluster_status')) $$;

CREATE FUNCTION pgraft_get_nodes()
RETURNS SETOF node_info LANGUAGE sql VOLATILE
AS $$ SELECT * FROM jsonb_populate_recordset(NULL::@extschema@.node_info,
        @extschema@.pgraft_call_status('nodes')) $$;

CREATE FUNCTION pgraft_is_leader()
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call_status('is_leader'))::boolean $$;

CREATE FUNCTION pgraft_get_leader()
RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call_status('leader'))::bigint $$;

CREATE FUNCTION pgraft_get_term()
RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call_status('term'))::bigint $$;

CREATE FUNCTION pgraft_get_queue_status(
    OUT pending_proposals bigint, OUT pending_reads bigint,
    OUT pending_waits bigint, OUT unapplied_entries bigint)
RETURNS record LANGUAGE sql VOLATILE
AS $$ SELECT q.pending_proposals, q.pending_reads, q.pending_waits, q.unapplied_entries
      FROM jsonb_to_record(@extschema@.pgraft_call_status('queue_status'))
        AS q(pending_proposals bigint, pending_reads bigint,
             pending_waits bigint, unapplied_entries bigint) $$;

CREATE FUNCTION pgraft_log_get_replication_status()
RETURNS TABLE (node_id integer, role text, state text, match_index bigint,
               next_index bigint, lag bigint, last_contact_ms bigint)
LANGUAGE sql VOLATILE
AS $$ SELECT r.node_id, r.role, r.state, r.match_index, r.next_index, r.lag, r.last_contact_ms
      FROM jsonb_to_recordset(@extschema@.pgraft_call_status('replication_status'))
        AS r(node_id integer, role text, state text, match_index bigint,
             next_index bigint, lag bigint, last_contact_ms bigint) $$;

-- Replicated log ----------------------------------------------------------

CREATE FUNCTION pgraft_log_append(term bigint, data text)
RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('log_append',
        jsonb_build_object('term', $1, 'data', $2)))::bigint $$;

CREATE FUNCTION pgraft_log_commit(index bigint)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call_status('log_commit',
        jsonb_build_object('index', $1)))::boolean $$;

CREATE FUNCTION pgraft_log_apply(index bigint)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call_status('log_apply',
        jsonb_build_object('index', $1)))::boolean $$;

CREATE FUNCTION pgraft_log_get_stats(
    OUT log_size bigint, OUT last_index bigint, OUT commit_index bigint,
    OUT last_applied bigint, OUT first_index bigint)
RETURNS record LANGUAGE sql VOLATILE
AS $$ SELECT s.log_size, s.last_index, s.commit_index, s.last_applied, s.first_index
      FROM jsonb_to_record(@extschema@.pgraft_call_status('log_stats'))
        AS s(log_size bigint, first_index bigint, last_index bigint,
             commit_index bigint, last_applied bigint) $$;

CREATE FUNCTION pgraft_log_read(from_index bigint, to_index bigint,
                                max_entries integer DEFAULT 1000)
RETURNS TABLE ("index" bigint, term bigint, data text)
LANGUAGE sql VOLATILE
AS $$ SELECT e."index", e.term, e.data
      FROM jsonb_to_recordset(@extschema@.pgraft_call_status('log_read',
             jsonb_build_object('from_index', $1, 'to_index', $2, 'limit', $3)))
        AS e("index" bigint, term bigint, data text)
      ORDER BY e."index" $$;

CREATE FUNCTION pgraft_log_sync_with_leader()
RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call_status('sync_with_leader'))::bigint $$;

-- Replicated key-value map ---------------------------------------------------

CREATE FUNCTION pgraft_kv_put(key text, value text)
RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('kv_put',
        jsonb_build_object('key', $1, 'value', $2)))::bigint $$;

CREATE FUNCTION pgraft_kv_get(key text)
RETURNS text LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@.pgraft_call_status('kv_get',
        jsonb_build_object('key', $1)) ->> 'value' $$;

CREATE FUNCTION pgraft_kv_delete(key text)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('kv_delete',
        jsonb_build_object('key', $1)) -> 'deleted')::boolean $$;

CREATE FUNCTION pgraft_kv_cas(key text, expected text, value text)
RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT (@extschema@.pgraft_call('kv_cas',
        jsonb_build_object('key', $1, 'expected', $2, 'value', $3)) -> 'ok')::boolean $$;

-- Privileges ----------------------------------------------------------------

REVOKE ALL ON FUNCTION
    pgraft_call(text, jsonb), pgraft_call_status(text, jsonb),
    pgraft_get_worker_state(), pgraft_get_worker_info(),
    pgraft_init(), pgraft_add_node(integer, text, integer), pgraft_remove_node(integer),
    pgraft_transfer_leadership(integer), pgraft_set_debug(boolean),
    pgraft_get_cluster_status(), pgraft_get_nodes(), pgraft_is_leader(),
    pgraft_get_leader(), pgraft_get_term(), pgraft_get_queue_status(),
    pgraft_log_get_replication_status(), pgraft_log_append(bigint, text),
    pgraft_log_commit(bigint), pgraft_log_apply(bigint), pgraft_log_get_stats(),
    pgraft_log_read(bigint, bigint, integer), pgraft_log_sync_with_leader(),
    pgraft_kv_put(text, text), pgraft_kv_get(text), pgraft_kv_delete(text),
    pgraft_kv_cas(text, text, text)
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    pgraft_call_status(text, jsonb),
    pgraft_get_worker_state(), pgraft_get_worker_info(),
    pgraft_get_cluster_status(), pgraft_get_nodes(), pgraft_is_leader(),
    pgraft_get_leader(), pgraft_get_term(), pgraft_get_queue_status(),
    pgraft_log_get_replication_status(), pgraft_log_commit(bigint),
    pgraft_log_apply(bigint), pgraft_log_get_stats(),
    pgraft_log_read(bigint, bigint, integer), pgraft_log_sync_with_leader(),
    pgraft_kv_get(text)
TO pg_monitor;
