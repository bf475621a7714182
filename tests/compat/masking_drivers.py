"""Masked results through real Python drivers: asyncpg (binary protocol,
prepared statements, cursors) and psycopg 3 (server-side cursor). Prints one
JSON object of what each driver received; the Rust test asserts on it.
Environment: GATEHOUSE_DSN, TABLE."""
import asyncio
import json
import os

import asyncpg
import psycopg

DSN = os.environ["GATEHOUSE_DSN"]
TABLE = os.environ["TABLE"]


async def with_asyncpg():
    conn = await asyncpg.connect(DSN, ssl=False)
    try:
        out = {}
        row = await conn.fetchrow(f"SELECT email, age, note FROM {TABLE} WHERE id = $1", 1)
        out["fetchrow"] = [row["email"], row["age"], row["note"]]
        stmt = await conn.prepare(f"SELECT email FROM {TABLE} ORDER BY id")
        out["prepared"] = [r["email"] for r in await stmt.fetch()]
        async with conn.transaction():
            out["cursor"] = [r["email"] async for r in conn.cursor(f"SELECT email FROM {TABLE} ORDER BY id", prefetch=1)]
        return out
    finally:
        await conn.close()


def with_psycopg():
    with psycopg.connect(DSN, sslmode="disable") as conn:
        with conn.cursor(name="server_side") as cur:
            cur.itersize = 1
            cur.execute(f"SELECT email, card_number FROM {TABLE} ORDER BY id")
            return [list(r) for r in cur]


result = asyncio.run(with_asyncpg())
result["psycopg_server_cursor"] = with_psycopg()
print(json.dumps(result))
