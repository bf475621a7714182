// Connects with node mysql2 and runs one query; prints what happened.
// usage: node mysql2_client.js PORT USER PASSWORD DATABASE tls|plain [cleartext]
'use strict';
const mysql = require('mysql2');

const [port, user, password, database, mode, cleartext] = process.argv.slice(2);
const conn = mysql.createConnection({
  host: '127.0.0.1',
  port: Number(port),
  user,
  password,
  database,
  connectTimeout: 10000,
  // The test's certificate is self-signed.
  ssl: mode === 'tls' ? { rejectUnauthorized: false } : undefined,
  enableCleartextPlugin: cleartext === 'cleartext',
});
conn.connect((err) => {
  if (err) {
    console.log(`CONNECT FAILED: ${err.code}: ${err.message}`);
    process.exit(2);
  }
  conn.query("SELECT 'gatehouse_probe'", (qerr) => {
    console.log(qerr ? `QUERY ERROR: ${qerr.message}` : 'QUERY SUCCEEDED');
    conn.end(() => process.exit(0));
  });
});
