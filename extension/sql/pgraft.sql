-- pgraft regression test: one server, one node (pg_regress created the
-- extension).  Values that differ between runs (terms, ports, pids) are
-- compared rather than printed; node errors are shown by SQLSTATE.

-- The supervisor and its node
SELECT pgraft_get_worker_state();
SELECT state, pid IS NOT NULL AS has_pid, supervisor_pid IS NOT NULL AS has_supervisor,
       restarts, last_exit FROM pgraft_get_worker_info();

-- Initialisation (idempotent) and leadership of the one-member cluster
SELECT pgraft_init();
SELECT pgraft_init();
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN pgraft_is_leader();
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT pgraft_is_leader(), pgraft_get_leader(), pgraft_get_term() > 0 AS has_term;
SELECT node_id, current_term = pgraft_get_term() AS same_term, leader_id, state, num_nodes,
       messages_processed >= 0 AS mp, heartbeats_sent >= 0 AS hb, elections_triggered >= 1 AS el
FROM pgraft_get_cluster_status();
SELECT node_id, address, port = current_setting('pgraft.port')::int AS raft_port, is_leader,
       role, state
FROM pgraft_get_nodes();

-- The replicated log: append, wait, read back
SELECT pgraft_log_append(0, 'first entry') AS i1 \gset
SELECT pgraft_log_append(pgraft_get_term(), '{"action": "user_created", "user_id": 123}') AS i2 \gset
SELECT :i2 > :i1 AS ordered;
SELECT pgraft_log_commit(:i2), pgraft_log_apply(:i2);
SELECT index = :i1 AS is_first, term = pgraft_get_term() AS this_term, data
FROM pgraft_log_read(:i1, :i2);
SELECT count(*) FROM pgraft_log_read(1, 1000000);
SELECT count(*) FROM pgraft_log_read(:i1, :i2, 1);
SELECT log_size >= 2 AS has_entries, last_index >= :i2 AS has_last,
       commit_index = last_index AS committed, last_applied = last_index AS applied,
       first_index >= 1 AS has_first
FROM pgraft_log_get_stats();
SELECT pgraft_log_sync_with_leader() >= :i2 AS synced;
SELECT * FROM pgraft_get_queue_status();
SELECT count(*) >= 0 AS ok FROM pgraft_log_get_replication_status();

-- The replicated key-value map
SELECT pgraft_kv_put('k', 'v1') > :i2 AS put;
SELECT pgraft_kv_get('k'), pgraft_kv_get('absent');
SELECT pgraft_kv_cas('k', 'wrong', 'v2'), pgraft_kv_get('k');
SELECT pgraft_kv_cas('k', 'v1', 'v2'), pgraft_kv_get('k');
SELECT pgraft_kv_cas('new', NULL, 'n1'), pgraft_kv_get('new');
SELECT pgraft_kv_delete('k'), pgraft_kv_delete('k'), pgraft_kv_get('k');

-- Debug switch and leadership transfer to itself
SELECT pgraft_set_debug(true), pgraft_set_debug(false);
SELECT pgraft_transfer_leadership(1), pgraft_is_leader();

-- The seed's monitoring dashboard query
WITH cluster_status AS (
    SELECT * FROM pgraft_get_cluster_status()
),
node_info AS (
    SELECT * FROM pgraft_get_nodes()
),
log_stats AS (
    SELECT * FROM pgraft_log_get_stats()
)
SELECT
    cs.node_id,
    cs.current_term > 0 AS has_term,
    cs.leader_id,
    cs.state,
    cs.num_nodes,
    ni.address,
    ni.port > 0 AS has_port,
    ni.is_leader,
    ls.log_size > 0 AS has_log,
    ls.last_index = ls.commit_index AS all_committed,
    ls.commit_index = ls.last_applied AS all_applied
FROM cluster_status cs
LEFT JOIN node_info ni ON cs.node_id = ni.node_id
LEFT JOIN log_stats ls ON true;

-- Errors: each is an error with a SQLSTATE, never a silent NULL or false
\set VERBOSITY sqlstate
SELECT pgraft_log_append(NULL, 'x');
SELECT pgraft_log_append(0, NULL);
SELECT pgraft_log_append(-1, 'x');
SELECT pgraft_log_append(pgraft_get_term() + 100, 'fenced');
SELECT pgraft_log_append(0, repeat('x', 2 * 1024 * 1024));
SELECT pgraft_log_commit(NULL);
SELECT pgraft_log_commit(1000000000);
SELECT pgraft_log_apply(1000000000);
SELECT pgraft_log_apply(-5);
SELECT * FROM pgraft_log_read(NULL, 10);
SELECT pgraft_add_node(NULL, '127.0.0.1', 7000);
SELECT pgraft_add_node(2, NULL, 7000);
SELECT pgraft_add_node(2, '127.0.0.1', NULL);
SELECT pgraft_add_node(-3, '127.0.0.1', 7000);
SELECT pgraft_add_node(0, '127.0.0.1', 7000);
SELECT pgraft_add_node(1, '127.0.0.1', 7000);
SELECT pgraft_add_node(2, '127.0.0.1', 70000);
SELECT pgraft_add_node(2, '127.0.0.1', 0);
SELECT pgraft_remove_node(NULL);
SELECT pgraft_remove_node(42);
SELECT pgraft_transfer_leadership(42);
SELECT pgraft_set_debug(NULL);
SELECT pgraft_kv_put(NULL, 'v');
SELECT pgraft_kv_get(NULL);
SELECT pgraft_call(NULL);
SELECT pgraft_call('no_such_op');
SELECT pgraft_call_status('log_append', '{"term": 0, "data": "x"}');
\set VERBOSITY default

-- Privileges: mutating functions are not for PUBLIC; status is for pg_monitor
CREATE ROLE pgraft_regress_user;
CREATE ROLE pgraft_regress_monitor IN ROLE pg_monitor;
SET ROLE pgraft_regress_user;
SELECT pgraft_log_append(0, 'not allowed');
SELECT pgraft_call('log_append', '{"term": 0, "data": "not allowed"}');
SELECT pgraft_get_term();
RESET ROLE;
SET ROLE pgraft_regress_monitor;
SELECT pgraft_get_term() > 0 AS monitor_reads_term, pgraft_get_worker_state();
SELECT count(*) FROM pgraft_log_read(1, 1000000);
SELECT pgraft_log_append(0, 'not allowed');
SELECT pgraft_add_node(9, '127.0.0.1', 7009);
SELECT pgraft_call_status('init');
RESET ROLE;
DROP ROLE pgraft_regress_user;
DROP ROLE pgraft_regress_monitor;

-- Nothing above changed the cluster
SELECT pgraft_is_leader(), num_nodes FROM pgraft_get_cluster_status();
SELECT count(*) FROM pgraft_log_read(1, 1000000);
SELECT count(*) FROM pgraft_log_read(5, 2);
