// node-postgres (npm `pg`) through the Gatehouse PostgreSQL gateway versus a
// direct connection.
//
// Runs the same operations against DIRECT_DSN and GATEHOUSE_DSN and compares
// every result: simple queries (one and several statements), parameterized
// queries, named prepared statements, transactions (commit, rollback, an error
// inside one), errors (a syntax error keeps SQLSTATE 42601 and the connection
// stays usable), notices, LISTEN/NOTIFY, a pool, and the same over TLS to the
// gateway. Exits non-zero on any difference. COMPAT_VERBOSE=1 prints every result.

import crypto from 'node:crypto';
import process from 'node:process';
import pg from 'pg';

const DIRECT = process.env.DIRECT_DSN;
const GATEWAY = process.env.GATEHOUSE_DSN;
if (!DIRECT || !GATEWAY) {
  console.error('set DIRECT_DSN and GATEHOUSE_DSN (libpq URLs of the direct and the gateway session)');
  process.exit(2);
}

const unique = (prefix) => `${prefix}_${crypto.randomBytes(8).toString('hex')}`;

// Values compared as JSON: Buffers, Dates and BigInts made explicit.
function plain(v) {
  return JSON.parse(
    JSON.stringify(v, function (k, x) {
      const raw = this[k];
      if (Buffer.isBuffer(raw)) return { bytea: raw.toString('hex') };
      if (raw instanceof Date) return { date: raw.toISOString() };
      if (typeof x === 'bigint') return { bigint: x.toString() };
      return x;
    }),
  );
}

const summary = (r) => ({
  command: r.command,
  rowCount: r.rowCount,
  fields: r.fields.map((f) => [f.name, f.dataTypeID, f.format]),
  rows: r.rows,
});

async function expectError(fn) {
  try {
    await fn();
  } catch (e) {
    return {
      code: e.code,
      message: e.message,
      position: e.position ?? null,
      severity: e.severity ?? null,
      constraint: e.constraint ?? null,
    };
  }
  return 'no error';
}

class Run {
  constructor(label) {
    this.label = label;
    this.results = [];
    this.step = '(start)';
  }
  // The run's own table name is written as <table>, so the runs compare.
  rec(name, value) {
    const text = JSON.stringify(plain(value) ?? null).replaceAll(this.table, '<table>');
    this.results.push([`${this.step}: ${name}`, JSON.parse(text)]);
  }
}

async function withClient(dsn, fn, extra = {}) {
  const c = new pg.Client({ connectionString: dsn, ...extra });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function body(run, dsn, t) {
  const client = new pg.Client({ connectionString: dsn, application_name: 'ghc_node' });
  const notices = [];
  client.on('notice', (n) => notices.push([n.severity, n.code, n.message, n.detail ?? null, n.hint ?? null]));
  await client.connect();
  try {
    run.step = 'simple query';
    run.rec('one statement', summary(await client.query("SELECT 1 AS a, 'x' AS b, NULL::int AS c")));
    const multi = await client.query(
      "SELECT 1 AS one; SELECT generate_series(1, 3) AS g, 'é✓' AS u; SET LOCAL work_mem = '8MB'",
    );
    run.rec('several statements', multi.map(summary));
    run.rec('empty', summary(await client.query('SELECT 1 WHERE false')));
    const big = await client.query("SELECT repeat('x', 1000000) AS big");
    run.rec('1 MB value', big.rows[0].big.length);
    run.rec('array rows', (await client.query({ text: 'SELECT 1, 2, 3', rowMode: 'array' })).rows);

    run.step = 'create table';
    run.rec(
      'create',
      (
        await client.query(
          `CREATE TABLE ${t} (id int PRIMARY KEY, name text, amount numeric(10,2), created timestamptz, doc jsonb, blob bytea, tags text[])`,
        )
      ).command,
    );

    run.step = 'parameterized query';
    for (let i = 1; i <= 20; i++) {
      await client.query(`INSERT INTO ${t} VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
        i,
        `row ${i} ✓`,
        (i * 1.25).toFixed(2),
        new Date(Date.UTC(2024, 0, 1, i)),
        { i, even: i % 2 === 0 },
        Buffer.from([i, 0, 255]),
        [`t${i}`, null, 'q"uote'],
      ]);
    }
    run.rec(
      'select',
      summary(await client.query(`SELECT * FROM ${t} WHERE id <= $1 AND name LIKE $2 ORDER BY id`, [5, 'row%'])),
    );
    run.rec(
      'types',
      summary(
        await client.query(
          'SELECT $1::int + 1 AS n, $2::text AS t, $3::numeric AS num, $4::bool AS b, $5::int[] AS arr, $6::uuid AS u, $7::bytea AS bin, $8::text IS NULL AS isnull',
          [41, 'héllo', '12345678901234567890.5', true, [1, 2, null], '12345678-1234-5678-1234-567812345678', Buffer.alloc(300000, 7), null],
        ),
      ),
    );
    const echo = crypto.randomBytes(500000);
    const back = await client.query('SELECT $1::bytea AS b', [echo]);
    run.rec('500 kB parameter round trip', back.rows[0].b.equals(echo));

    run.step = 'named prepared statement';
    const named = { name: 'ghc-by-id', text: `SELECT id, name, amount FROM ${t} WHERE id = $1`, values: [3] };
    run.rec('first', summary(await client.query(named)));
    run.rec('again', summary(await client.query({ ...named, values: [4] })));
    run.rec('array mode', (await client.query({ ...named, values: [5], rowMode: 'array' })).rows);
    // Prepared once upstream, found by its text: Gatehouse prepares named
    // statements there under names of its own (docs/postgres.md).
    run.rec(
      'upstream',
      (await client.query(`SELECT count(*)::int AS n, min(parameter_types::text) AS types FROM pg_prepared_statements WHERE NOT from_sql AND statement = 'SELECT id, name, amount FROM ${t} WHERE id = $1'`)).rows,
    );
    run.rec(
      'parse error',
      await expectError(() => client.query({ name: 'ghc-bad', text: 'SELECT nonsense FROM', values: [] })),
    );
    run.rec('usable after parse error', (await client.query(named)).rows);

    run.step = 'transaction';
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${t} (id, name) VALUES ($1, $2)`, [100, 'in tx']);
    run.rec('visible inside', (await client.query(`SELECT count(*)::int AS n FROM ${t} WHERE id = 100`)).rows);
    await client.query('COMMIT');
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${t} (id, name) VALUES (101, 'rolled back')`);
    run.rec('duplicate key', await expectError(() => client.query(`INSERT INTO ${t} (id) VALUES ($1)`, [1])));
    run.rec('aborted transaction', await expectError(() => client.query('SELECT 1')));
    run.rec('rollback', (await client.query('ROLLBACK')).command);
    run.rec('after rollback', (await client.query(`SELECT id FROM ${t} WHERE id >= 100 ORDER BY id`)).rows);
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${t} (id) VALUES (102)`);
    await client.query('SAVEPOINT s1');
    run.rec('in savepoint', await expectError(() => client.query('SELECT 1/0')));
    await client.query('ROLLBACK TO SAVEPOINT s1');
    await client.query(`INSERT INTO ${t} (id) VALUES (103)`);
    run.rec('commit', (await client.query('COMMIT')).command);
    run.rec('committed', (await client.query(`SELECT id FROM ${t} WHERE id >= 100 ORDER BY id`)).rows);

    run.step = 'errors';
    run.rec('syntax error', await expectError(() => client.query('SELEC 1')));
    run.rec('usable after syntax error', (await client.query('SELECT 1 AS ok')).rows);
    run.rec('syntax error, extended protocol', await expectError(() => client.query('SELEC $1', [1])));
    run.rec('bad parameter', await expectError(() => client.query('SELECT $1::int', ['abc'])));
    run.rec('undefined table', await expectError(() => client.query('SELECT * FROM ghc_no_such_table')));
    run.rec(
      'error in a multi-statement query',
      await expectError(() => client.query(`SELECT 1; SELECT 1/0; INSERT INTO ${t} (id) VALUES (104)`)),
    );
    run.rec('rest of that query skipped', (await client.query(`SELECT count(*)::int AS n FROM ${t} WHERE id = 104`)).rows);
    run.rec('usable at the end', (await client.query('SELECT $1::text AS ok', ['yes'])).rows);

    run.step = 'notices';
    await client.query("DO $$ BEGIN RAISE NOTICE 'x'; END $$");
    await client.query("DO $$ BEGIN RAISE WARNING USING MESSAGE = 'w ✓', DETAIL = 'd', HINT = 'h'; END $$");
    run.rec('notices', notices);
  } finally {
    await client.end();
  }

  run.step = 'listen/notify';
  const chan = unique('ghc_chan');
  await withClient(dsn, async (listener) => {
    const got = [];
    let wake;
    const two = new Promise((resolve) => (wake = resolve));
    listener.on('notification', (n) => {
      got.push([n.channel === chan, n.payload]);
      if (got.length === 2) wake();
    });
    await listener.query(`LISTEN ${chan}`);
    await withClient(DIRECT, async (notifier) => {
      await notifier.query(`NOTIFY ${chan}, 'one'`);
      await notifier.query('SELECT pg_notify($1, $2)', [chan, 'two ✓']);
    });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('no notifications within 15 s')), 15000);
    });
    await Promise.race([two, timeout]).finally(() => clearTimeout(timer));
    run.rec('received', got);
  });

  run.step = 'pool';
  const pool = new pg.Pool({ connectionString: dsn, max: 3 });
  try {
    const all = await Promise.all(
      Array.from({ length: 12 }, (_, i) => pool.query('SELECT $1::int * 2 AS v', [i]).then((r) => r.rows[0].v)),
    );
    run.rec('results', all);
  } finally {
    await pool.end();
  }

  run.step = 'tls';
  // sslmode=require: TLS without verifying the certificate (the gateway's
  // default certificate is self-signed; the direct server's is the machine's).
  const tls = dsn.includes('?') ? `${dsn}&sslmode=no-verify` : `${dsn}?sslmode=no-verify`;
  await withClient(tls, async (c) => {
    run.rec('query over TLS', (await c.query("SELECT $1::text || ' over tls' AS v", ['query'])).rows);
  });
}

async function runAll(label, dsn) {
  const run = new Run(label);
  const t = unique('gh_compat_node');
  run.table = t;
  try {
    await body(run, dsn, t);
  } catch (e) {
    console.error(`FAIL node-postgres: the ${label} run failed at step '${run.step}': ${e.stack ?? e}`);
    if (e.code) console.error(`  SQLSTATE ${e.code}`);
    process.exitCode = 1;
    return null;
  } finally {
    await withClient(DIRECT, (c) => c.query(`DROP TABLE IF EXISTS ${t}`)).catch((e) =>
      console.error(`cleanup failed: ${e.message}`),
    );
  }
  console.log(`node-postgres: ${label} run completed ${run.results.length} results`);
  return run;
}

const direct = await runAll('direct', DIRECT);
if (!direct) process.exit(1);
const gateway = await runAll('gateway', GATEWAY);
if (!gateway) {
  console.error('(the same step worked on the direct connection)');
  process.exit(1);
}
if (process.env.COMPAT_VERBOSE) {
  for (const [name, value] of gateway.results) console.log(`  ${name} = ${JSON.stringify(value).slice(0, 300)}`);
}
const problems = [];
const n = Math.max(direct.results.length, gateway.results.length);
for (let i = 0; i < n; i++) {
  const d = direct.results[i];
  const g = gateway.results[i];
  if (JSON.stringify(d) !== JSON.stringify(g)) {
    problems.push(`  #${i} ${d?.[0] ?? g?.[0]}\n      direct : ${JSON.stringify(d?.[1])}\n      gateway: ${JSON.stringify(g?.[1])}`);
  }
}
if (problems.length) {
  console.log("FAIL node-postgres: the gateway's results differ from the direct connection's:");
  console.log(problems.join('\n'));
  process.exit(1);
}
console.log(`OK node-postgres: ${direct.results.length} results identical through the gateway and direct`);
