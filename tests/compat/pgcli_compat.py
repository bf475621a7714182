#!/usr/bin/env python3
"""pgcli through the Gatehouse PostgreSQL gateway versus a direct connection.

pgcli (psycopg 3 underneath, pgspecial for backslash commands) reads the
catalog for its completions with queries of its own. Runs the same work
against DIRECT_DSN and GATEHOUSE_DSN and compares every result: the
completion metadata pgcli loads at start (schemas, tables, views, columns,
foreign keys, functions, types, the search path), backslash commands
(`\\dt`, `\\d`, `\\dv`, `\\df`, `\\dn`, `\\sf`), statements and an error, and
the `pgcli -c` command line as a person runs it. Only the objects of this
run's own schema are compared (other tests create tables meanwhile).
Exits non-zero on any difference.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgcli.pgexecute import PGExecute  # noqa: E402
from pgspecial.main import PGSpecial  # noqa: E402

from compat_common import main, unique  # noqa: E402

SCHEMA = unique("gh_compat_pgcli")


def ours(rows):
    """The rows that name this run's schema, as sorted lists."""
    return sorted([repr(r) for r in rows if SCHEMA in repr(r)])


def run_pgcli(run, dsn, direct_dsn):
    pge = PGExecute(dsn=dsn)
    special = PGSpecial()

    def sql(statement):
        out = []
        for title, cur, headers, status, _sql, success, is_special in pge.run(
            statement,
            pgspecial=special,
            exception_formatter=lambda e: f"{type(e).__name__}: {e}",
            on_error_resume=True,
        ):
            rows = [list(r) for r in cur] if cur is not None else None
            out.append([title, rows, list(headers or []), status, success, is_special])
        return out

    try:
        with run.step("create a schema, tables, a view, a function, a type"):
            run.rec(
                "ddl",
                sql(
                    f"""CREATE SCHEMA {SCHEMA};
                    CREATE TYPE {SCHEMA}.mood AS ENUM ('ok', 'happy');
                    CREATE TABLE {SCHEMA}.customers (id int PRIMARY KEY, email text NOT NULL, mood {SCHEMA}.mood);
                    CREATE TABLE {SCHEMA}.orders (id int PRIMARY KEY,
                        customer int REFERENCES {SCHEMA}.customers (id), total numeric(10, 2));
                    CREATE VIEW {SCHEMA}.big_orders AS SELECT * FROM {SCHEMA}.orders WHERE total > 100;
                    CREATE FUNCTION {SCHEMA}.double(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 2';
                    INSERT INTO {SCHEMA}.customers VALUES (1, 'ann@example.com', 'happy'), (2, 'bob@example.org', NULL);
                    INSERT INTO {SCHEMA}.orders VALUES (10, 1, 99.50), (11, 1, 150.00), (12, 2, 250.25);"""
                ),
            )
        with run.step("completion metadata"):
            run.rec("schemata", sorted(s for s in pge.schemata() if s == SCHEMA))
            run.rec("tables", ours(pge.tables()))
            run.rec("views", ours(pge.views()))
            run.rec("table columns", ours(pge.table_columns()))
            run.rec("view columns", ours(pge.view_columns()))
            run.rec("foreign keys", ours(pge.foreignkeys()))
            run.rec("functions", ours(pge.functions()))
            run.rec("datatypes", ours(pge.datatypes()))
            run.rec("search path", pge.search_path())
            run.rec("casing has words", len(list(pge.casing())) > 0)
        with run.step("backslash commands"):
            for command in (
                f"\\dt {SCHEMA}.*",
                f"\\d {SCHEMA}.orders",
                f"\\dv {SCHEMA}.*",
                f"\\df {SCHEMA}.*",
                f"\\dn {SCHEMA}",
                f"\\dT {SCHEMA}.*",
                f"\\sf {SCHEMA}.double",
            ):
                run.rec(command, sql(command))
        with run.step("statements and an error"):
            run.rec(
                "join",
                sql(
                    f"SELECT c.email, o.total, {SCHEMA}.double(o.id) FROM {SCHEMA}.customers c "
                    f"JOIN {SCHEMA}.orders o ON o.customer = c.id ORDER BY o.id"
                ),
            )
            run.rec("error", sql(f"SELECT * FROM {SCHEMA}.missing"))
            run.rec("after the error", sql("SELECT 1 AS one"))
        with run.step("pgcli -c on the command line"):
            done = subprocess.run(
                [
                    "pgcli",
                    "--less-chatty",
                    "-c",
                    f"SELECT id, total FROM {SCHEMA}.big_orders ORDER BY id",
                    "-c",
                    f"\\d {SCHEMA}.customers",
                    dsn,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            # Timings differ from run to run.
            out = re.sub(r"(?m)^Time: .*$", "Time: …", done.stdout)
            run.rec("pgcli -c", [done.returncode, out])
    finally:
        pge.conn.rollback()
        list(pge.run(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        pge.conn.close()


if __name__ == "__main__":
    main("pgcli", run_pgcli)
