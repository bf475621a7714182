// PostgreSQL JDBC (pgjdbc) through the Gatehouse PostgreSQL gateway versus a
// direct connection.
//
// Runs the same operations against DIRECT_DSN and GATEHOUSE_DSN (libpq URLs,
// turned into jdbc:postgresql URLs here) and compares every result:
// PreparedStatement selects (past prepareThreshold, so server-prepared and
// binary), types, batch inserts (plain and rewritten), a failing batch, a
// fetch size inside a transaction (Execute with a row limit, so
// PortalSuspended), transactions with a savepoint, errors, and
// Statement.cancel(). Exits non-zero on any difference.
//
// Run with the source launcher:
//   java -cp /usr/share/java/postgresql.jar tests/compat/jdbc/Compat.java

import java.math.BigDecimal;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.sql.Array;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicReference;

public class Compat {
    /** How long a cancelled pg_sleep(30) may take to end once cancel() was called. */
    static final long CANCEL_WITHIN_MS = 10_000;

    static final class Run {
        final String label;
        final String table;
        final List<String[]> results = new ArrayList<>();
        String step = "(start)";

        Run(String label, String table) {
            this.label = label;
            this.table = table;
        }

        void rec(String name, Object value) {
            results.add(new String[] {step + ": " + name, String.valueOf(value).replace(table, "<table>")});
        }
    }

    /** A libpq URL (postgresql://user:password@host:port/db?k=v) as a JDBC URL and properties. */
    static Connection connect(String dsn, String... extra) throws Exception {
        URI u = new URI(dsn);
        Properties p = new Properties();
        String info = u.getRawUserInfo();
        if (info != null) {
            String[] parts = info.split(":", 2);
            p.setProperty("user", URLDecoder.decode(parts[0], StandardCharsets.UTF_8));
            if (parts.length > 1) {
                p.setProperty("password", URLDecoder.decode(parts[1], StandardCharsets.UTF_8));
            }
        }
        if (u.getRawQuery() != null) {
            for (String kv : u.getRawQuery().split("&")) {
                String[] parts = kv.split("=", 2);
                p.setProperty(parts[0], parts.length > 1 ? URLDecoder.decode(parts[1], StandardCharsets.UTF_8) : "");
            }
        }
        for (int i = 0; i + 1 < extra.length; i += 2) {
            p.setProperty(extra[i], extra[i + 1]);
        }
        String url = "jdbc:postgresql://" + u.getHost() + ":" + (u.getPort() > 0 ? u.getPort() : 5432) + u.getRawPath();
        return DriverManager.getConnection(url, p);
    }

    static String rows(ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        StringBuilder sb = new StringBuilder("[");
        while (rs.next()) {
            sb.append(sb.length() > 1 ? ", (" : "(");
            for (int c = 1; c <= md.getColumnCount(); c++) {
                Object o = rs.getObject(c);
                if (o instanceof byte[]) {
                    o = "bytes:" + Arrays.toString((byte[]) o);
                } else if (o instanceof Array) {
                    o = "array:" + Arrays.deepToString((Object[]) ((Array) o).getArray());
                }
                sb.append(c > 1 ? ", " : "").append(o);
            }
            sb.append(")");
        }
        return sb.append("]").toString();
    }

    static String columns(ResultSetMetaData md) throws SQLException {
        List<String> out = new ArrayList<>();
        for (int c = 1; c <= md.getColumnCount(); c++) {
            out.add(md.getColumnLabel(c) + ":" + md.getColumnTypeName(c));
        }
        return out.toString();
    }

    static String error(SQLException e) {
        return e.getSQLState() + " " + e.getMessage().split("\n")[0];
    }

    static void body(Run run, String dsn, String directDsn) throws Exception {
        String t = run.table;
        try (Connection conn = connect(dsn, "ApplicationName", "ghc_jdbc")) {
            run.step = "connect";
            run.rec("product", conn.getMetaData().getDatabaseProductName() + " " + conn.getMetaData().getDatabaseMajorVersion());
            run.rec("autocommit", conn.getAutoCommit());

            run.step = "create table";
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE " + t + " (id int PRIMARY KEY, name text, amount numeric(12,3),"
                        + " created timestamptz, ref uuid, blob bytea, tags text[])");
                run.rec("update count", st.getUpdateCount());
            }

            run.step = "batch insert";
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + t + " VALUES (?, ?, ?, ?, ?, ?, ?)")) {
                // Batches send every message before reading any reply: several
                // big ones make the gateway's writes meet a full socket.
                for (int base = 10_000; base < 50_000; base += 10_000) {
                    for (int i = base; i < base + 1000; i++) {
                        ps.setInt(1, i);
                        ps.setString(2, "bulk " + i + " " + "b".repeat(200));
                        ps.setBigDecimal(3, BigDecimal.valueOf(i, 3));
                        ps.setObject(4, OffsetDateTime.of(2024, 1, 1, 0, 0, 0, 0, ZoneOffset.UTC));
                        ps.setObject(5, new UUID(1, i));
                        ps.setBytes(6, new byte[64]);
                        ps.setArray(7, conn.createArrayOf("text", new String[] {"bulk"}));
                        ps.addBatch();
                    }
                    int[] counts = ps.executeBatch();
                    run.rec("bulk batch " + base, counts.length + " x " + Arrays.stream(counts).distinct().boxed().toList());
                }
                for (int i = 1; i <= 500; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "row " + i + " é✓");
                    ps.setBigDecimal(3, BigDecimal.valueOf(i, 2));
                    ps.setObject(4, OffsetDateTime.of(2024, 1, 1, 0, 0, 0, 0, ZoneOffset.UTC).plusMinutes(i));
                    ps.setObject(5, new UUID(0, i));
                    ps.setBytes(6, new byte[] {(byte) i, 0, (byte) 255});
                    ps.setArray(7, conn.createArrayOf("text", new String[] {"t" + i, null}));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                run.rec("update counts", counts.length + " x " + Arrays.stream(counts).distinct().boxed().toList());
            }
            try (Connection rw = connect(dsn, "reWriteBatchedInserts", "true");
                    PreparedStatement ps = rw.prepareStatement("INSERT INTO " + t + " (id, name) VALUES (?, ?)")) {
                for (int i = 1000; i < 1300; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "rewritten " + i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                run.rec("rewritten batch", counts.length + " x " + Arrays.stream(counts).distinct().boxed().toList());
            }
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(
                    "SELECT count(*), sum(amount), md5(string_agg(name || coalesce(encode(blob, 'hex'), ''), ',' ORDER BY id)) FROM " + t)) {
                run.rec("table", rows(rs));
            }
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + t + " (id, name) VALUES (?, ?)")) {
                for (int id : new int[] {2000, 2001, 1, 2002}) {
                    ps.setInt(1, id);
                    ps.setString(2, "batch with a duplicate");
                    ps.addBatch();
                }
                ps.executeBatch();
                run.rec("failing batch", "no error");
            } catch (BatchUpdateException e) {
                run.rec("failing batch", error(e) + " counts=" + Arrays.toString(e.getUpdateCounts()));
            }
            conn.rollback();
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM " + t + " WHERE id >= 2000")) {
                run.rec("failing batch rolled back", rows(rs));
            }
            conn.commit();
            conn.setAutoCommit(true);

            run.step = "prepared select";
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, name, amount, created, ref, blob, tags FROM " + t + " WHERE id = ? OR name = ?")) {
                List<String> got = new ArrayList<>();
                for (int i = 1; i <= 8; i++) { // past prepareThreshold (5): server-prepared, binary
                    ps.setInt(1, i * 7);
                    ps.setString(2, "row " + i + " é✓");
                    try (ResultSet rs = ps.executeQuery()) {
                        if (i == 1) {
                            run.rec("columns", columns(rs.getMetaData()));
                        }
                        got.add(rows(rs));
                    }
                }
                run.rec("results", got);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    run.rec("typed getters", rs.getInt(1) + " " + rs.getString(2) + " " + rs.getBigDecimal(3) + " "
                            + rs.getObject(4, OffsetDateTime.class).withOffsetSameInstant(ZoneOffset.UTC) + " "
                            + rs.getObject(5, UUID.class) + " " + Arrays.toString(rs.getBytes(6)));
                }
            }
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(
                    "SELECT count(*) > 0 FROM pg_prepared_statements WHERE statement LIKE 'SELECT id, name, amount%'")) {
                run.rec("server-prepared upstream", rows(rs));
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT ?::int + 1, ?::text, ?::numeric, ?::bytea, ?::timestamptz")) {
                ps.setInt(1, 41);
                ps.setString(2, "héllo");
                ps.setBigDecimal(3, new BigDecimal("-123456789012345678901234.5678"));
                ps.setBytes(4, new byte[300_000]);
                ps.setObject(5, OffsetDateTime.of(2020, 2, 29, 12, 0, 0, 0, ZoneOffset.ofHours(3)));
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    run.rec("parameters", rs.getInt(1) + " " + rs.getString(2) + " " + rs.getBigDecimal(3) + " "
                            + rs.getBytes(4).length + " " + rs.getObject(5, OffsetDateTime.class).toInstant());
                }
            }

            run.step = "fetch size in a transaction";
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement("SELECT id, name FROM " + t + " WHERE id < ? ORDER BY id")) {
                ps.setFetchSize(10);
                ps.setInt(1, 96);
                int n = 0;
                long sum = 0;
                String last = null;
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        n++;
                        sum += rs.getInt(1);
                        last = rs.getString(2);
                    }
                }
                run.rec("rows", n + " " + sum + " " + last);
            }
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(3);
                try (ResultSet rs = st.executeQuery("SELECT g, repeat('r', 300000) FROM generate_series(1, 7) g")) {
                    List<String> sizes = new ArrayList<>();
                    while (rs.next()) {
                        sizes.add(rs.getInt(1) + ":" + rs.getString(2).length());
                    }
                    run.rec("large rows", sizes);
                }
            }
            conn.commit();

            run.step = "transactions";
            try (Statement st = conn.createStatement()) {
                st.executeUpdate("INSERT INTO " + t + " (id, name) VALUES (3000, 'kept')");
                Savepoint sp = conn.setSavepoint();
                st.executeUpdate("INSERT INTO " + t + " (id, name) VALUES (3001, 'undone')");
                try {
                    st.executeQuery("SELECT 1/0");
                } catch (SQLException e) {
                    run.rec("error in transaction", error(e));
                }
                try {
                    st.executeQuery("SELECT 1");
                } catch (SQLException e) {
                    run.rec("aborted", error(e));
                }
                conn.rollback(sp);
                st.executeUpdate("INSERT INTO " + t + " (id, name) VALUES (3002, 'kept too')");
                conn.commit();
                st.executeUpdate("INSERT INTO " + t + " (id, name) VALUES (3003, 'rolled back')");
                conn.rollback();
                try (ResultSet rs = st.executeQuery("SELECT id, name FROM " + t + " WHERE id >= 3000 ORDER BY id")) {
                    run.rec("committed", rows(rs));
                }
                conn.commit();
            }
            conn.setAutoCommit(true);

            run.step = "errors";
            try (Statement st = conn.createStatement()) {
                try {
                    st.execute("SELEC 1");
                } catch (SQLException e) {
                    run.rec("syntax error", error(e));
                }
                try (ResultSet rs = st.executeQuery("SELECT 'usable'")) {
                    run.rec("usable", rows(rs));
                }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT ?::int")) {
                ps.setString(1, "not a number");
                ps.executeQuery();
            } catch (SQLException e) {
                run.rec("bad parameter", error(e));
            }
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + t + " (id) VALUES (?)")) {
                ps.setInt(1, 1);
                ps.executeUpdate();
            } catch (SQLException e) {
                run.rec("duplicate key", error(e));
            }

            run.step = "notices";
            try (Statement st = conn.createStatement()) {
                st.execute("DO $$ BEGIN RAISE NOTICE 'x'; END $$");
                List<String> warnings = new ArrayList<>();
                for (java.sql.SQLWarning w = st.getWarnings(); w != null; w = w.getNextWarning()) {
                    warnings.add(w.getSQLState() + " " + w.getMessage());
                }
                run.rec("warnings", warnings);
            }

            run.step = "cancel";
            cancel(run, conn, directDsn);
        }
    }

    static void cancel(Run run, Connection conn, String directDsn) throws Exception {
        String app = "ghc_jdbc_cancel_" + UUID.randomUUID().toString().replace("-", "");
        try (Statement set = conn.createStatement()) {
            set.execute("SET application_name = '" + app + "'");
        }
        AtomicReference<String> outcome = new AtomicReference<>("not finished");
        long[] ended = new long[1];
        try (Statement st = conn.createStatement(); Connection monitor = connect(directDsn)) {
            Thread worker = new Thread(() -> {
                try {
                    st.execute("SELECT pg_sleep(30)");
                    outcome.set("completed without being cancelled");
                } catch (SQLException e) {
                    outcome.set(e.getSQLState());
                }
                ended[0] = System.nanoTime();
            });
            worker.start();
            long deadline = System.nanoTime() + 20_000_000_000L;
            try (PreparedStatement ps = monitor.prepareStatement("SELECT count(*) FROM pg_stat_activity"
                    + " WHERE application_name = ? AND state = 'active' AND query LIKE 'SELECT pg_sleep%'")) {
                ps.setString(1, app);
                while (true) {
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        if (rs.getInt(1) > 0) {
                            break;
                        }
                    }
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("pg_sleep(30) did not start within 20 s");
                    }
                    Thread.sleep(20);
                }
            }
            long asked = System.nanoTime();
            st.cancel();
            worker.join(CANCEL_WITHIN_MS + 5_000);
            if (worker.isAlive()) {
                throw new AssertionError("Statement.cancel() did not end pg_sleep(30)");
            }
            run.rec("outcome", outcome.get());
            run.rec("ended within " + CANCEL_WITHIN_MS + " ms", (ended[0] - asked) / 1_000_000 < CANCEL_WITHIN_MS);
            try (ResultSet rs = st.executeQuery("SELECT 42")) {
                run.rec("usable afterwards", rows(rs));
            }
        }
    }

    static Run runOne(String label, String dsn, String directDsn) {
        String table = "gh_compat_jdbc_" + UUID.randomUUID().toString().replace("-", "").substring(0, 16);
        Run run = new Run(label, table);
        try {
            body(run, dsn, directDsn);
        } catch (Throwable e) {
            System.out.println("FAIL jdbc: the " + label + " run failed at step '" + run.step + "': " + e);
            e.printStackTrace(System.out);
            return null;
        } finally {
            try (Connection c = connect(directDsn); Statement st = c.createStatement()) {
                st.execute("DROP TABLE IF EXISTS " + table);
            } catch (Exception e) {
                System.out.println("cleanup failed: " + e);
            }
        }
        System.out.println("jdbc: " + label + " run completed " + run.results.size() + " results");
        return run;
    }

    public static void main(String[] args) throws Exception {
        String direct = System.getenv("DIRECT_DSN");
        String gateway = System.getenv("GATEHOUSE_DSN");
        if (direct == null || gateway == null) {
            System.out.println("set DIRECT_DSN and GATEHOUSE_DSN (libpq URLs of the direct and the gateway session)");
            System.exit(2);
        }
        Run d = runOne("direct", direct, direct);
        if (d == null) {
            System.exit(1);
        }
        Run g = runOne("gateway", gateway, direct);
        if (g == null) {
            System.out.println("(the same step worked on the direct connection)");
            System.exit(1);
        }
        if (System.getenv("COMPAT_VERBOSE") != null) {
            for (String[] r : g.results) {
                String v = r[1].length() > 300 ? r[1].substring(0, 300) + "..." : r[1];
                System.out.println("  " + r[0] + " = " + v);
            }
        }
        List<String> problems = new ArrayList<>();
        for (int i = 0; i < Math.max(d.results.size(), g.results.size()); i++) {
            String[] a = i < d.results.size() ? d.results.get(i) : new String[] {"(missing)", ""};
            String[] b = i < g.results.size() ? g.results.get(i) : new String[] {"(missing)", ""};
            if (!Arrays.equals(a, b)) {
                problems.add("  #" + i + " " + a[0] + "\n      direct : " + a[1] + "\n      gateway: "
                        + (b[0].equals(a[0]) ? "" : b[0] + " ") + b[1]);
            }
        }
        if (!problems.isEmpty()) {
            System.out.println("FAIL jdbc: the gateway's results differ from the direct connection's:");
            problems.forEach(System.out::println);
            System.exit(1);
        }
        System.out.println("OK jdbc: " + d.results.size() + " results identical through the gateway and direct");
    }
}
