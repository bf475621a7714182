"""Connects with PyMySQL and runs one query; prints what happened.

usage: pymysql_client.py PORT USER PASSWORD DATABASE tls|plain
"""
import ssl
import sys

import pymysql

port, user, password, database, mode = sys.argv[1:6]
kwargs = {}
if mode == "tls":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test's certificate is self-signed
    kwargs["ssl"] = ctx
try:
    conn = pymysql.connect(host="127.0.0.1", port=int(port), user=user, password=password,
                           database=database, connect_timeout=10, **kwargs)
except Exception as e:  # noqa: BLE001 - report any failure to the test
    print(f"CONNECT FAILED: {type(e).__name__}: {e}")
    sys.exit(2)
try:
    with conn.cursor() as cur:
        cur.execute("SELECT 'gatehouse_probe'")
    print("QUERY SUCCEEDED")
except pymysql.MySQLError as e:
    print(f"QUERY ERROR: {e}")
finally:
    conn.close()
