#!/usr/bin/env python3
"""psycopg 3 through the Gatehouse PostgreSQL gateway versus a direct connection.

Runs the same operations against DIRECT_DSN and GATEHOUSE_DSN and compares
every result: server-side parameters (text and binary), executemany, COPY in
and out (text and binary), transactions with errors and savepoints, prepared
statements, LISTEN/NOTIFY, notices, named (server-side) cursors, pipeline
mode and query cancellation (cancel() and libpq 17's cancel_safe()). Exits
non-zero on any difference. psycopg's named cursors are DECLARE/FETCH
statements, not Execute row limits; asyncpg_compat.py and jdbc/Compat.java
cover portal suspension.
"""

import datetime
import hashlib
import os
import sys
import threading
import time
import uuid
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg  # noqa: E402
from psycopg import errors, sql  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from compat_common import main, unique  # noqa: E402

UTC = datetime.timezone.utc
# How long a cancelled pg_sleep(30) may take to end once cancel() was called.
CANCEL_WITHIN = 10.0


def row_values(i):
    return (
        i,
        f"name {i} é✓",
        Decimal(i) / 4,
        datetime.datetime(2024, 1, 1, tzinfo=UTC) + datetime.timedelta(hours=i),
        [f"t{i}", None, "x y"],
        Jsonb({"i": i, "even": i % 2 == 0, "s": "q\"uote"}),
        bytes([i % 256, 0, 255]),
    )


def describe(cur):
    return [(d.name, d.type_code) for d in cur.description or []]


def wait_until_active(monitor, app, what, timeout=20.0):
    """Polls pg_stat_activity until a session of `app` is running `what`."""
    deadline = time.monotonic() + timeout
    while True:
        n = monitor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND state = 'active' AND query LIKE %s",
            (app, what + "%"),
        ).fetchone()[0]
        if n:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no session of {app} started running {what!r} within {timeout}s")
        time.sleep(0.02)


def cancel_one(run, dsn, direct_dsn, how):
    """Runs pg_sleep(30) in a thread and cancels it with `how` ('cancel' or 'cancel_safe')."""
    app = unique("ghc_cancel")
    with psycopg.connect(dsn, autocommit=True, application_name=app) as conn, psycopg.connect(
        direct_dsn, autocommit=True
    ) as monitor:
        outcome = {}

        def worker():
            try:
                conn.execute("SELECT pg_sleep(30)")
                outcome["result"] = "completed without being cancelled"
            except Exception as e:  # noqa: BLE001 - recorded and compared
                outcome["result"] = (type(e).__name__, getattr(e, "sqlstate", None))
            outcome["ended"] = time.monotonic()

        th = threading.Thread(target=worker, daemon=True)
        th.start()
        wait_until_active(monitor, app, "SELECT pg_sleep")
        asked = time.monotonic()
        getattr(conn, how)()
        th.join(CANCEL_WITHIN + 5)
        if th.is_alive():
            raise AssertionError(f"conn.{how}() did not end pg_sleep(30) within {CANCEL_WITHIN + 5}s")
        took = outcome["ended"] - asked
        run.rec("outcome", outcome["result"])
        run.rec(f"ended within {CANCEL_WITHIN}s", took < CANCEL_WITHIN)
        run.rec("connection usable afterwards", conn.execute("SELECT 42").fetchone())


def run_psycopg(run, dsn, direct_dsn):
    t = unique("gh_compat_psycopg")
    chan = unique("ghc_chan")
    try:
        body(run, dsn, direct_dsn, t, chan)
    finally:
        with psycopg.connect(direct_dsn, autocommit=True) as c:
            c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(t)))


def body(run, dsn, direct_dsn, t, chan):
    T = sql.Identifier(t)
    conn = psycopg.connect(dsn)
    with conn:
        cur = conn.cursor()

        with run.step("connect"):
            run.rec("server_version", conn.info.server_version)
            run.rec("encoding", conn.info.encoding)
            run.rec("status", conn.info.transaction_status.name)
            run.rec("TimeZone", conn.info.parameter_status("TimeZone"))
            run.rec("integer_datetimes", conn.info.parameter_status("integer_datetimes"))

        with run.step("server-side parameters"):
            q = (
                "SELECT %s::int + 1, %s::text || '!', %s::numeric * 2, %s::bool, %s::bytea,"
                " %s::int[], %s::timestamptz, %s::uuid, %s::jsonb, %s::text IS NULL, %s::float8"
            )
            params = (
                41,
                "héllo ✓",
                Decimal("1.25"),
                True,
                b"\x00\x01\xff",
                [1, None, 3],
                datetime.datetime(2024, 2, 29, 12, 30, tzinfo=UTC),
                uuid.UUID("12345678-1234-5678-1234-567812345678"),
                Jsonb({"a": [1, 2, {"b": None}]}),
                None,
                1.5e300,
            )
            cur.execute(q, params)
            run.rec("text results", cur.fetchone())
            run.rec("description", describe(cur))
            cur.execute(q, params, binary=True)
            run.rec("binary results", cur.fetchone())
            run.rec("binary description", describe(cur))
            cur.execute(
                "SELECT %b::int8 * 2, %b::text, %b::bytea, %t::numeric, %b::int4[]",
                (2**40, "bin ✓", bytes(range(256)), Decimal("-0.001"), [7, 8]),
            )
            run.rec("binary parameters", cur.fetchone())
            big = os.urandom(700_000)
            cur.execute("SELECT length(%b::bytea), md5(%b::bytea)", (big, big))
            run.rec("700 kB binary parameter", cur.fetchone() == (len(big), hashlib.md5(big).hexdigest()))
            cur.execute("SELECT %b::bytea, repeat('x', 1000000)", (big,), binary=True)
            got_big, got_text = cur.fetchone()
            run.rec("700 kB binary result round trip", got_big == big)
            run.rec("1 MB text result", (len(got_text), hashlib.md5(got_text.encode()).hexdigest()))
            cur.execute("SELECT 1 WHERE false")
            run.rec("empty result", (cur.fetchall(), cur.rowcount, describe(cur)))
            cur.execute("SELECT generate_series(1, 3) AS n, %s::text AS s", ("same",))
            run.rec("several rows", (cur.fetchall(), cur.rowcount))
            conn.commit()

        with run.step("create table"):
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} (id int PRIMARY KEY, name text, amount numeric(12,2),"
                    " created timestamptz, tags text[], payload jsonb, blob bytea)"
                ).format(T)
            )
            run.rec("status", cur.statusmessage)
            conn.commit()

        ins = sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s)").format(T)

        with run.step("executemany"):
            cur.executemany(ins, [row_values(i) for i in range(1, 101)])
            run.rec("rowcount", cur.rowcount)
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id, name").format(T),
                [row_values(i) for i in range(101, 111)],
                returning=True,
            )
            returned = []
            while True:
                returned.extend(cur.fetchall())
                if not cur.nextset():
                    break
            run.rec("returning", returned)
            conn.commit()
            cur.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(T))
            run.rec("rows read back", cur.fetchall())

        with run.step("copy from stdin"):
            cols = sql.SQL("(id, name, amount, created, tags, payload, blob)")
            with cur.copy(sql.SQL("COPY {} {} FROM STDIN").format(T, cols)) as cp:
                for i in range(1000, 6000):
                    cp.write_row(row_values(i))
            run.rec("text copy rowcount", cur.rowcount)
            with cur.copy(sql.SQL("COPY {} {} FROM STDIN (FORMAT BINARY)").format(T, cols)) as cp:
                cp.set_types(["int4", "text", "numeric", "timestamptz", "text[]", "jsonb", "bytea"])
                for i in range(10_000, 10_500):
                    cp.write_row(row_values(i))
            run.rec("binary copy rowcount", cur.rowcount)
            with cur.copy(sql.SQL("COPY {} (id, name) FROM STDIN").format(T)) as cp:
                cp.write(b"20001\traw one\n20002\t\\N\n")
                cp.write(b"20003\t" + b"y" * 400_000 + b"\n")
            run.rec("raw copy rowcount", cur.rowcount)
            conn.commit()

            # A COPY the server rejects (duplicate key) and one the client aborts.
            try:
                with cur.copy(sql.SQL("COPY {} (id, name) FROM STDIN").format(T)) as cp:
                    cp.write_row((30_000, "ok"))
                    cp.write_row((1, "duplicate"))
                run.rec("duplicate copy", "no error")
            except errors.UniqueViolation as e:
                run.rec("duplicate copy", (type(e).__name__, e.sqlstate, e.diag.constraint_name == f"{t}_pkey"))
            run.rec("status after copy error", conn.info.transaction_status.name)
            conn.rollback()
            try:
                with cur.copy(sql.SQL("COPY {} (id, name) FROM STDIN").format(T)) as cp:
                    cp.write_row((30_001, "aborted"))
                    raise ValueError("client gives up")
            except ValueError as e:
                run.rec("client abort", str(e))
            run.rec("status after client abort", conn.info.transaction_status.name)
            conn.rollback()
            cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE id >= 30000").format(T))
            run.rec("nothing of the failed copies", cur.fetchone())

        with run.step("copy to stdout"):
            with cur.copy(sql.SQL("COPY (SELECT * FROM {} ORDER BY id) TO STDOUT").format(T)) as cp:
                data = b"".join(bytes(b) for b in cp)
            run.rec("text copy out", (len(data), hashlib.sha256(data).hexdigest(), cur.rowcount))
            with cur.copy(
                sql.SQL("COPY (SELECT id, name, amount, blob FROM {} WHERE id < 2000 ORDER BY id) TO STDOUT (FORMAT BINARY)").format(T)
            ) as cp:
                cp.set_types(["int4", "text", "numeric", "bytea"])
                rows = list(cp.rows())
            run.rec("binary copy out", rows)
            with cur.copy("COPY (SELECT repeat('z', 600000), 1) TO STDOUT") as cp:
                big = b"".join(bytes(b) for b in cp)
            run.rec("600 kB copy row", (len(big), hashlib.sha256(big).hexdigest()))
            conn.commit()

        with run.step("transactions"):
            run.rec("idle", conn.info.transaction_status.name)
            cur.execute(ins, row_values(40_000))
            run.rec("in transaction", conn.info.transaction_status.name)
            try:
                cur.execute("SELECT 1/0")
                run.rec("division", "no error")
            except errors.DivisionByZero as e:
                run.rec("division", (type(e).__name__, e.sqlstate, e.diag.message_primary))
            run.rec("failed transaction", conn.info.transaction_status.name)
            try:
                cur.execute("SELECT 1")
                run.rec("after error", "no error")
            except errors.InFailedSqlTransaction as e:
                run.rec("after error", (type(e).__name__, e.sqlstate))
            conn.rollback()
            run.rec("rolled back", conn.info.transaction_status.name)
            cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE id = 40000").format(T))
            run.rec("insert undone", cur.fetchone())
            conn.commit()

            try:
                with conn.transaction():
                    cur.execute(ins, row_values(40_001))
                    cur.execute(ins, row_values(1))
            except errors.UniqueViolation as e:
                run.rec("unique violation", (e.sqlstate, e.diag.table_name == t))
            with conn.transaction():
                cur.execute(ins, row_values(40_002))
                try:
                    with conn.transaction():  # a savepoint
                        cur.execute(ins, row_values(40_003))
                        cur.execute("SELECT * FROM no_such_table_here")
                except errors.UndefinedTable as e:
                    run.rec("savepoint error", (e.sqlstate, e.diag.message_primary))
                cur.execute(ins, row_values(40_004))
            cur.execute(sql.SQL("SELECT id FROM {} WHERE id >= 40000 ORDER BY id").format(T))
            run.rec("committed rows", cur.fetchall())
            conn.commit()

        with run.step("prepared statements"):
            q = sql.SQL("SELECT id, name, amount FROM {} WHERE id = %s").format(T)
            got = []
            for i in (1, 2, 3, 1000):
                cur.execute(q, (i,), prepare=True)
                got.append(cur.fetchone())
            run.rec("results", got)
            # Found by their text: Gatehouse prepares named statements
            # upstream under names of its own (docs/postgres.md).
            cur.execute(
                "SELECT parameter_types::text[] FROM pg_prepared_statements"
                " WHERE NOT from_sql AND statement LIKE %s ORDER BY statement",
                (f"%{t}%",),
            )
            run.rec("prepared upstream", cur.fetchall())
            for i in range(8):  # past prepare_threshold: prepared automatically
                cur.execute("SELECT %s::int * 3", (i,))
                got.append(cur.fetchone())
            run.rec("automatic", got[-3:])
            cur.execute("PREPARE ghc_p (int) AS SELECT $1 * 2, 'sql-level'")
            cur.execute("EXECUTE ghc_p(21)")
            run.rec("PREPARE/EXECUTE", cur.fetchone())
            cur.execute("DEALLOCATE ghc_p")
            try:
                cur.execute("EXECUTE ghc_p(1)")
            except errors.InvalidSqlStatementName as e:
                run.rec("deallocated", e.sqlstate)
            conn.rollback()

        with run.step("notices"):
            notices = []
            conn.add_notice_handler(
                lambda d: notices.append(
                    (d.severity_nonlocalized, d.sqlstate, d.message_primary, d.message_detail, d.message_hint)
                )
            )
            cur.execute("DO $$ BEGIN RAISE NOTICE 'x'; END $$")
            cur.execute(
                "DO $$ BEGIN RAISE WARNING USING MESSAGE = 'careful ✓', DETAIL = 'some detail',"
                " HINT = 'a hint', ERRCODE = '01000'; END $$"
            )
            cur.execute("DROP TABLE IF EXISTS ghc_no_such_table_ever")
            run.rec("notices", notices)
            conn.rollback()

        with run.step("named cursor"):
            with conn.cursor(name=unique("ghc_cur")) as nc:
                nc.itersize = 7
                nc.execute(sql.SQL("SELECT id, name, blob FROM {} WHERE id < 200 ORDER BY id").format(T))
                run.rec("description", describe(nc))
                run.rec("fetchmany", nc.fetchmany(5))
                run.rec("fetchone", nc.fetchone())
                run.rec("iterate", [r[0] for r in nc])
            with conn.cursor(name=unique("ghc_scroll"), scrollable=True) as sc:
                sc.execute(sql.SQL("SELECT id FROM {} WHERE id < 50 ORDER BY id").format(T))
                sc.scroll(10, mode="absolute")
                a = sc.fetchone()
                sc.scroll(-3)
                run.rec("scroll", (a, sc.fetchone(), sc.fetchmany(2)))
            conn.commit()
            with conn.cursor(name=unique("ghc_hold"), withhold=True) as hc:
                hc.execute("SELECT generate_series(1, 25)")
                conn.commit()
                run.rec("with hold after commit", [r[0] for r in hc.fetchmany(30)])
            conn.commit()

        with run.step("pipeline"):
            with conn.pipeline():
                c1 = conn.execute(sql.SQL("INSERT INTO {} (id, name) VALUES (%s, %s) RETURNING id").format(T), (50_000, "p1"))
                c2 = conn.execute(sql.SQL("UPDATE {} SET name = %s WHERE id = %s").format(T), ("p1 updated", 50_000))
                c3 = conn.execute(sql.SQL("SELECT id, name FROM {} WHERE id = %s").format(T), (50_000,))
                c4 = conn.execute("SELECT %s::text", ("fourth",), prepare=True)
            run.rec("results", (c1.fetchall(), c2.rowcount, c3.fetchall(), c4.fetchall()))
            conn.commit()
            statuses = []
            try:
                with conn.pipeline():
                    conn.execute(sql.SQL("INSERT INTO {} (id, name) VALUES (%s, 'p2')").format(T), (50_001,))
                    conn.execute("SELECT 1/0")
                    conn.execute(sql.SQL("INSERT INTO {} (id, name) VALUES (%s, 'p3')").format(T), (50_002,))
            except (errors.DivisionByZero, errors.PipelineAborted) as e:
                statuses.append((type(e).__name__, e.sqlstate))
            statuses.append(conn.info.transaction_status.name)
            conn.rollback()
            cur.execute(sql.SQL("SELECT id FROM {} WHERE id >= 50000 ORDER BY id").format(T))
            statuses.append(cur.fetchall())
            run.rec("error in pipeline", statuses)
            conn.commit()
            with conn.pipeline() as p:
                many = [conn.execute("SELECT %s::int, %s::text", (i, f"v{i}")) for i in range(200)]
                p.sync()
                run.rec("200 queued queries", [c.fetchone() for c in many] == [(i, f"v{i}") for i in range(200)])
            conn.commit()

    with run.step("listen/notify"):
        with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(
            direct_dsn, autocommit=True
        ) as notifier:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(chan)))
            notifier_pid = notifier.info.backend_pid
            notifier.execute("SELECT pg_notify(%s, %s)", (chan, "first ✓"))
            notifier.execute(sql.SQL("NOTIFY {}, 'second'").format(sql.Identifier(chan)))
            with notifier.transaction():
                notifier.execute("SELECT pg_notify(%s, %s)", (chan, "third, in a transaction"))
            got = [
                (n.channel == chan, n.payload, n.pid == notifier_pid)
                for n in listener.notifies(timeout=15, stop_after=3)
            ]
            run.rec("received", got)
            run.rec("connection usable", listener.execute("SELECT 'after notify'").fetchone())
            listener.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(chan)))

    with run.step("cancel"):
        cancel_one(run, dsn, direct_dsn, "cancel")
    with run.step("cancel_safe"):
        cancel_one(run, dsn, direct_dsn, "cancel_safe")

    with run.step("signal one's own backend with a bound parameter"):
        # psycopg binds parameters server-side: $1 in the Parse, the pid in
        # the Bind (as text, and with %b in binary).
        with psycopg.connect(dsn, autocommit=True) as mine, psycopg.connect(dsn, autocommit=True) as other:
            pid = other.execute("SELECT pg_backend_pid()").fetchone()[0]
            run.rec("cancel, text", mine.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone())
            run.rec("cancel, binary", mine.execute("SELECT pg_cancel_backend(%b)", (pid,)).fetchone())
            run.rec("other still usable", other.execute("SELECT 'still here'").fetchone())

    with run.step("close"):
        with psycopg.connect(dsn) as c:
            c.execute("SELECT 1")
        run.rec("closed", c.closed)


if __name__ == "__main__":
    main("psycopg", run_psycopg)
