#!/usr/bin/env python3
"""asyncpg through the Gatehouse PostgreSQL gateway versus a direct connection.

asyncpg speaks only the extended protocol with binary formats. Runs the same
operations against DIRECT_DSN and GATEHOUSE_DSN and compares every result:
types (int, text, numeric, timestamptz, jsonb, uuid, bytea, arrays) both
ways, prepared statements (prepare, fetch, executemany), COPY in and out,
cursors with prefetch inside a transaction (Execute with a row limit, so
PortalSuspended), errors and transactions, notices, LISTEN/NOTIFY and a
timeout that cancels the query. Exits non-zero on any difference.
"""

import asyncio
import datetime
import decimal
import hashlib
import io
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import asyncpg  # noqa: E402

from compat_common import main, unique  # noqa: E402

UTC = datetime.timezone.utc


def row_values(i):
    return (
        i,
        f"name {i} ✓",
        decimal.Decimal(i) / 8,
        datetime.datetime(2023, 6, 1, tzinfo=UTC) + datetime.timedelta(minutes=i),
        f'{{"i": {i}, "tags": ["a", "b"]}}',
        uuid.UUID(int=i),
        bytes([i % 256]) * 5,
        [i, i + 1, None],
        [f"s{i}", "x"],
    )


COLUMNS = "(id, name, amount, created, payload, ref, blob, nums, words)"


def records(rows):
    """Records as plain tuples (asyncpg.Record compares by value, but prints poorly)."""
    return [tuple(r) for r in rows]


def run_asyncpg(run, dsn, direct_dsn):
    t = unique("gh_compat_asyncpg")

    async def go():
        try:
            await body(run, dsn, direct_dsn, t)
        finally:
            c = await asyncpg.connect(direct_dsn)
            try:
                await c.execute(f"DROP TABLE IF EXISTS {t}")
            finally:
                await c.close()

    asyncio.run(go())


async def body(run, dsn, direct_dsn, t):
    conn = await asyncpg.connect(dsn)
    try:
        await steps(run, conn, dsn, direct_dsn, t)
    finally:
        await conn.close()


async def steps(run, conn, dsn, direct_dsn, t):
    with run.step("connect"):
        run.rec("server_version", tuple(conn.get_server_version()))
        run.rec("settings", (conn.get_settings().server_encoding, conn.get_settings().client_encoding))
        run.rec("select", await conn.fetchval("SELECT 1"))

    with run.step("types"):
        ts = datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
        row = await conn.fetchrow(
            "SELECT $1::int4, $2::int8, $3::text, $4::numeric, $5::timestamptz, $6::jsonb,"
            " $7::uuid, $8::bytea, $9::int4[], $10::text[], $11::numeric[], $12::bool, $13::float8,"
            " $14::date, $15::interval",
            -2147483648,
            9223372036854775807,
            "unicode ✓ \u00e9",
            decimal.Decimal("-12345678901234567890.123456789"),
            ts,
            '{"k": [1, 2, {"n": null}], "s": "é"}',
            uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            b"\x00\xff" * 1000,
            [1, None, -3],
            ["a", "", None, "q\"uote"],
            [decimal.Decimal("1.5"), decimal.Decimal("NaN")],
            False,
            -0.0,
            datetime.date(2000, 1, 1),
            datetime.timedelta(days=3, seconds=7, microseconds=5),
        )
        values = list(row)
        nan = values[10][1]
        values[10] = [values[10][0], "NaN" if nan.is_nan() else nan]
        run.rec("round trip", values)
        run.rec("column names", list(row.keys()))
        run.rec(
            "server literals",
            records(
                await conn.fetch(
                    "SELECT 42::int2 AS a, '3.14159'::numeric AS b, '2001-02-03 04:05:06+07'::timestamptz AS c,"
                    " '[1,2,3]'::jsonb AS d, '{{1,2},{3,4}}'::int[] AS e, NULL::text AS f, 'NaN'::float8::text AS g,"
                    " '\\x0102'::bytea AS h, gen_random_uuid() IS NOT NULL AS i"
                )
            ),
        )
        big = os.urandom(600_000)
        echoed = await conn.fetchval("SELECT $1::bytea", big)
        run.rec("600 kB bytea round trip", echoed == big)
        text = await conn.fetchval("SELECT repeat('ab', 400000)")
        run.rec("800 kB text", (len(text), hashlib.sha256(text.encode()).hexdigest()))

    with run.step("create table"):
        status = await conn.execute(
            f"CREATE TABLE {t} (id int PRIMARY KEY, name text, amount numeric(14,3), created timestamptz,"
            " payload jsonb, ref uuid, blob bytea, nums int[], words text[])"
        )
        run.rec("status", status)

    with run.step("prepared statements"):
        ins = await conn.prepare(f"INSERT INTO {t} {COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        run.rec("parameters", [p.name for p in ins.get_parameters()])
        await ins.executemany([row_values(i) for i in range(1, 201)])
        await conn.executemany(
            f"INSERT INTO {t} {COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [row_values(i) for i in range(201, 301)],
        )
        sel = await conn.prepare(f"SELECT * FROM {t} WHERE id = ANY($1::int[]) ORDER BY id")
        run.rec("attributes", [(a.name, a.type.name) for a in sel.get_attributes()])
        run.rec("fetch", records(await sel.fetch([1, 2, 150, 300, 9999])))
        run.rec("fetchrow", tuple(await sel.fetchrow([7])))
        run.rec("fetchval", await sel.fetchval([8], column=1))
        run.rec("explain", (await sel.explain([1]))[0]["Plan"]["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Seq Scan"))
        count = await conn.prepare(f"SELECT count(*), sum(amount) FROM {t}")
        run.rec("count", tuple(await count.fetchrow()))
        run.rec("prepared upstream", await conn.fetchval("SELECT count(*) > 0 FROM pg_prepared_statements"))

    with run.step("copy"):
        status = await conn.copy_records_to_table(
            t,
            records=[row_values(i) for i in range(1000, 4000)],
            columns=["id", "name", "amount", "created", "payload", "ref", "blob", "nums", "words"],
        )
        run.rec("copy_records_to_table", status)
        src = io.BytesIO()
        for i in range(5000, 5500):
            src.write(f"{i}\tcopied {i}\t{i}.5\n".encode())
        src.write(f"5500\t{'w' * 300_000}\t1\n".encode())
        src.seek(0)
        status = await conn.copy_to_table(t, source=src, columns=["id", "name", "amount"])
        run.rec("copy_to_table", status)
        out = io.BytesIO()
        status = await conn.copy_from_query(f"SELECT * FROM {t} ORDER BY id", output=out)
        data = out.getvalue()
        run.rec("copy_from_query", (status, len(data), hashlib.sha256(data).hexdigest()))
        out = io.BytesIO()
        status = await conn.copy_from_table(t, columns=["id", "name"], output=out, format="csv", header=True)
        data = out.getvalue()
        run.rec("copy_from_table csv", (status, len(data), hashlib.sha256(data).hexdigest()))
        out = io.BytesIO()
        status = await conn.copy_from_query(
            "SELECT $1::int, g FROM generate_series(1, 10) g", 5, output=out, format="binary"
        )
        run.rec("copy_from_query binary with argument", (status, out.getvalue()))
        try:
            await conn.copy_records_to_table(t, records=[row_values(1)], columns=[
                "id", "name", "amount", "created", "payload", "ref", "blob", "nums", "words"
            ])
            run.rec("duplicate copy", "no error")
        except asyncpg.UniqueViolationError as e:
            run.rec("duplicate copy", (type(e).__name__, e.sqlstate, e.constraint_name == f"{t}_pkey"))
        run.rec("usable after copy error", await conn.fetchval(f"SELECT count(*) FROM {t}"))

    with run.step("cursor with prefetch"):
        async with conn.transaction():
            got = []
            async for r in conn.cursor(f"SELECT id, name, blob FROM {t} WHERE id < $1 ORDER BY id", 250, prefetch=7):
                got.append(tuple(r))
            run.rec("iterated", got)
            cur = await conn.cursor(f"SELECT id FROM {t} ORDER BY id")
            first = records(await cur.fetch(5))
            skipped = await cur.forward(10)
            one = tuple(await cur.fetchrow())
            rest = records(await cur.fetch(3))
            run.rec("fetch/forward/fetchrow", (first, skipped, one, rest))
            stmt = await conn.prepare("SELECT g, repeat('r', 300000) FROM generate_series(1, 4) g")
            sizes = [(r[0], len(r[1])) async for r in stmt.cursor(prefetch=1)]
            run.rec("large rows one at a time", sizes)
            run.rec("transaction still fine", await conn.fetchval("SELECT 'in tx'"))

    with run.step("transactions"):
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {t} (id) VALUES (90000)")
                await conn.execute(f"INSERT INTO {t} (id) VALUES (1)")
        except asyncpg.UniqueViolationError as e:
            run.rec("unique violation", (e.sqlstate, e.table_name == t))
        run.rec("rolled back", await conn.fetchval(f"SELECT count(*) FROM {t} WHERE id = 90000"))
        run.rec("in transaction", conn.is_in_transaction())
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {t} (id) VALUES (90001)")
            try:
                async with conn.transaction():  # savepoint
                    await conn.execute(f"INSERT INTO {t} (id) VALUES (90002)")
                    await conn.execute("SELECT 1/0")
            except asyncpg.DivisionByZeroError as e:
                run.rec("savepoint error", (e.sqlstate, str(e)))
            await conn.execute(f"INSERT INTO {t} (id) VALUES (90003)")
        run.rec("committed", records(await conn.fetch(f"SELECT id FROM {t} WHERE id >= 90000 ORDER BY id")))
        try:
            await conn.execute("SELEC 1")
        except asyncpg.PostgresSyntaxError as e:
            run.rec("syntax error", (e.sqlstate, str(e), e.position))
        try:
            await conn.fetch("SELECT $1::int", "not an int")
        except asyncpg.DataError as e:
            run.rec("client-side encode error", type(e).__name__)
        try:
            await conn.fetch("SELECT 1/$1::int", 0)
        except asyncpg.DivisionByZeroError as e:
            run.rec("error on execute", e.sqlstate)
        run.rec("still usable", await conn.fetchval("SELECT 'ok'"))

    with run.step("notices"):
        notices = []
        conn.add_log_listener(lambda c, m: notices.append((type(m).__name__, m.sqlstate, m.message, m.detail, m.hint)))
        await conn.execute("DO $$ BEGIN RAISE NOTICE 'x'; END $$")
        await conn.execute("DO $$ BEGIN RAISE WARNING USING MESSAGE = 'w ✓', DETAIL = 'd', HINT = 'h'; END $$")
        await conn.fetchval("SELECT 1")  # listeners run from the event loop
        run.rec("notices", notices)

    with run.step("listen/notify"):
        chan = unique("ghc_chan")
        listener = await asyncpg.connect(dsn)
        notifier = await asyncpg.connect(direct_dsn)
        try:
            got = asyncio.Queue()
            def on_notify(c, pid, ch, payload):
                got.put_nowait((ch == chan, payload))

            await listener.add_listener(chan, on_notify)
            await notifier.execute(f"NOTIFY {chan}, 'one'")
            await notifier.fetchval("SELECT pg_notify($1, $2)", chan, "two ✓")
            received = [await asyncio.wait_for(got.get(), 15) for _ in range(2)]
            run.rec("received", received)
            await listener.remove_listener(chan, on_notify)
            run.rec("usable after UNLISTEN", await listener.fetchval("SELECT 'listener ok'"))
        finally:
            await listener.close()
            await notifier.close()

    with run.step("timeout cancels the query"):
        started = time.monotonic()
        try:
            await conn.fetchval("SELECT pg_sleep(30)", timeout=1.0)
            run.rec("outcome", "completed")
        except asyncio.TimeoutError:
            run.rec("outcome", "TimeoutError")
        # asyncpg sends a CancelRequest on timeout; the connection is usable
        # again once the server has ended the query, long before 30 s.
        run.rec("usable after cancel", await conn.fetchval("SELECT 'after cancel'"))
        run.rec("well before pg_sleep ends", time.monotonic() - started < 12)

    with run.step("pool"):
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=3)
        try:
            results = await asyncio.gather(*(pool.fetchval("SELECT $1::int * 2", i) for i in range(12)))
            run.rec("results", results)
        finally:
            await pool.close()


if __name__ == "__main__":
    main("asyncpg", run_asyncpg)
