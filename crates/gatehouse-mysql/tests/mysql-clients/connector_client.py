"""Connects with mysql-connector-python (pure Python) and runs one query.

usage: connector_client.py PORT USER PASSWORD DATABASE tls|plain
"""
import sys

import mysql.connector

port, user, password, database, mode = sys.argv[1:6]
try:
    conn = mysql.connector.connect(
        host="127.0.0.1", port=int(port), user=user, password=password, database=database,
        connection_timeout=10, use_pure=True,
        ssl_disabled=(mode != "tls"),
        ssl_verify_cert=False, ssl_verify_identity=False,  # self-signed test certificate
    )
except Exception as e:  # noqa: BLE001 - report any failure to the test
    print(f"CONNECT FAILED: {type(e).__name__}: {e}")
    sys.exit(2)
try:
    cur = conn.cursor()
    cur.execute("SELECT 'gatehouse_probe'")
    cur.fetchall()
    print("QUERY SUCCEEDED")
except mysql.connector.Error as e:
    print(f"QUERY ERROR: {e}")
finally:
    try:
        conn.close()
    except Exception:  # noqa: BLE001
        pass
