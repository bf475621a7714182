//! The MySQL/MariaDB analysis over a table of statements: class, tables
//! read and written, functions. Each row is checked exactly, so a change
//! in what sqlparser parses, or in how a statement is classified, shows
//! here.

use std::collections::BTreeSet;

use gatehouse_policy::{Class, analyze_mysql, column_refs_mysql};

use Class::{Admin, Dcl, Ddl, Other, Read, Transaction, Write};

/// (statement, class, tables read, tables written, functions)
type Row = (
    &'static str,
    Class,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const NONE: &[&str] = &[];

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Reads.
    ("SELECT 1", Read, NONE, NONE, NONE),
    ("select * from t where a = 1", Read, &["t"], NONE, NONE),
    ("SELECT `id` FROM `db`.`Users` u", Read, &["db.users"], NONE, NONE),
    ("SELECT * FROM Shop.Orders o JOIN customers c ON o.c = c.id", Read, &["customers", "shop.orders"], NONE, NONE),
    ("SELECT * FROM t FOR UPDATE", Read, &["t"], NONE, NONE),
    ("SELECT * FROM t LOCK IN SHARE MODE", Read, &["t"], NONE, NONE),
    ("SELECT a INTO @v FROM t", Read, &["t"], NONE, NONE),
    ("SELECT a FROM t INTO @v, @w", Read, &["t"], NONE, NONE),
    ("SELECT JSON_EXTRACT(doc, '$.a'), CONCAT(a, b) FROM t", Read, &["t"], NONE, &["concat", "json_extract"]),
    ("SELECT GROUP_CONCAT(email SEPARATOR ',') FROM t GROUP BY k", Read, &["t"], NONE, &["group_concat"]),
    ("SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t", Read, &["t"], NONE, &["row_number"]),
    ("SELECT a->'$.x', a->>'$.y' FROM t", Read, &["t"], NONE, NONE),
    ("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE EXISTS (SELECT 1 FROM v))", Read, &["t", "u", "v"], NONE, NONE),
    ("WITH x AS (SELECT * FROM secrets) SELECT * FROM x", Read, &["secrets"], NONE, NONE),
    ("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets", Read, &["secrets"], NONE, NONE),
    ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r", Read, NONE, NONE, NONE),
    ("SELECT 1 UNION SELECT a FROM u", Read, &["u"], NONE, NONE),
    ("SELECT sleep(1)", Read, NONE, NONE, &["sleep"]),
    ("SELECT BENCHMARK(1000000, MD5('x'))", Read, NONE, NONE, &["benchmark", "md5"]),
    ("SELECT my_udf(a) FROM t", Read, &["t"], NONE, &["my_udf"]),
    ("SELECT 'a;b', 'c*/d', \"e;--\", 'it\\'s', 'x''y' FROM t", Read, &["t"], NONE, NONE),
    ("SELECT /*!40001 SQL_NO_CACHE */ * FROM t", Read, &["t"], NONE, NONE),
    ("SELECT 1 # DELETE FROM t", Read, NONE, NONE, NONE),
    ("SELECT 1 -- ; DELETE FROM t", Read, NONE, NONE, NONE),
    ("SELECT 1 /* ; DELETE FROM t */", Read, NONE, NONE, NONE),
    ("VALUES ROW(1, 2)", Read, NONE, NONE, NONE),
    ("TABLE t", Read, &["t"], NONE, NONE),
    ("SELECT 1 UNION TABLE secrets", Read, &["secrets"], NONE, NONE),
    ("SELECT * FROM (TABLE db.secrets) x", Read, &["db.secrets"], NONE, NONE),
    ("WITH x AS (SELECT 1) TABLE x", Read, NONE, NONE, NONE),
    ("INSERT INTO t TABLE secrets", Write, &["secrets"], &["t"], NONE),
    ("DO sleep(1)", Read, NONE, NONE, &["sleep"]),
    ("SHOW TABLES", Read, NONE, NONE, NONE),
    ("SHOW CREATE TABLE secrets", Read, &["secrets"], NONE, NONE),
    ("SHOW COLUMNS FROM secrets", Read, &["secrets"], NONE, NONE),
    ("SHOW GRANTS FOR 'u'@'%'", Read, NONE, NONE, NONE),
    ("SHOW PROCESSLIST", Read, NONE, NONE, NONE),
    ("SHOW TABLES WHERE (SELECT 1 FROM secrets)", Read, &["secrets"], NONE, NONE),
    ("DESCRIBE secrets", Read, &["secrets"], NONE, NONE),
    ("EXPLAIN SELECT * FROM t", Read, &["t"], NONE, NONE),
    ("HANDLER secrets OPEN", Read, &["secrets"], NONE, NONE),
    ("HANDLER secrets READ FIRST", Read, &["secrets"], NONE, NONE),
    ("HANDLER secrets CLOSE", Other, NONE, NONE, NONE),
    // Writes.
    ("INSERT INTO t VALUES (1)", Write, NONE, &["t"], NONE),
    ("INSERT INTO t SELECT * FROM u", Write, &["u"], &["t"], NONE),
    ("INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1", Write, NONE, &["t"], NONE),
    ("INSERT INTO t SET a = (SELECT max(b) FROM u)", Write, &["u"], &["t"], &["max"]),
    ("REPLACE INTO t VALUES (1)", Write, NONE, &["t"], NONE),
    ("REPLACE INTO t SELECT * FROM u", Write, &["u"], &["t"], NONE),
    ("UPDATE t SET a = 1", Write, NONE, &["t"], NONE),
    ("UPDATE a JOIN b ON a.id = b.id SET a.x = b.y", Write, &["b"], &["a"], NONE),
    ("UPDATE a x JOIN b y ON x.id = y.id SET y.v = x.v", Write, &["a"], &["b"], NONE),
    ("UPDATE a, b SET a.x = b.y WHERE a.id = b.id", Write, &["b"], &["a"], NONE),
    ("UPDATE a JOIN b ON a.id = b.id SET x = 1", Write, NONE, &["a", "b"], NONE),
    ("DELETE FROM t WHERE id = 1", Write, NONE, &["t"], NONE),
    ("DELETE a FROM a JOIN b ON a.id = b.id", Write, &["b"], &["a"], NONE),
    ("DELETE FROM a USING a JOIN b ON a.id = b.id", Write, &["a", "b"], &["a"], NONE),
    ("WITH x AS (SELECT id FROM u) DELETE FROM t WHERE id IN (SELECT id FROM x)", Write, &["u"], &["t"], NONE),
    ("TRUNCATE TABLE t", Write, NONE, &["t"], NONE),
    ("CALL proc()", Write, NONE, NONE, &["proc"]),
    ("CALL db.proc(1)", Write, NONE, NONE, &["proc"]),
    ("LOCK TABLES t READ, u WRITE", Write, &["t"], &["u"], NONE),
    ("LOCK TABLES db.t AS x READ LOCAL, db.u LOW_PRIORITY WRITE", Write, &["db.t"], &["db.u"], NONE),
    ("SELECT GET_LOCK('x', 10)", Write, NONE, NONE, &["get_lock"]),
    ("EXPLAIN ANALYZE DELETE FROM t", Write, NONE, &["t"], NONE),
    ("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t FIELDS TERMINATED BY ','", Write, NONE, &["t"], NONE),
    ("LOAD DATA LOCAL INFILE 'x' INTO TABLE t (a, @b) SET c = (SELECT v FROM u LIMIT 1)", Write, &["u"], &["t"], NONE),
    ("SELECT 1; DELETE FROM t", Write, NONE, &["t"], NONE),
    ("SELECT 1 /*! ; DELETE FROM t */", Write, NONE, &["t"], NONE),
    ("SELECT 1 /*!99999 ; DELETE FROM t */", Write, NONE, &["t"], NONE),
    ("SELECT 1 /*M!100100 ; DELETE FROM t */", Write, NONE, &["t"], NONE),
    // On a server older than 5.0 the `;` is skipped: sqlparser then reads
    // `SELECT 1 DELETE FROM t` as a query of t (the server would refuse it).
    ("SELECT 1 /*!50000 ; */ DELETE FROM t", Write, &["t"], &["t"], NONE),
    // DDL.
    ("CREATE TABLE t (a INT) ENGINE=InnoDB", Ddl, NONE, &["t"], NONE),
    ("CREATE TABLE t2 AS SELECT * FROM t", Ddl, &["t"], &["t2"], NONE),
    ("CREATE TABLE t2 LIKE t", Ddl, &["t"], &["t2"], NONE),
    ("ALTER TABLE t ADD COLUMN b INT", Ddl, NONE, &["t"], NONE),
    ("ALTER TABLE db.t DISABLE KEYS", Ddl, NONE, &["db.t"], NONE),
    ("DROP TABLE t, db.u", Ddl, NONE, &["db.u", "t"], NONE),
    ("RENAME TABLE a TO b, c TO d", Ddl, NONE, &["a", "b", "c", "d"], NONE),
    ("CREATE INDEX i ON t (a)", Ddl, NONE, &["t"], NONE),
    ("CREATE VIEW v AS SELECT * FROM t", Ddl, &["t"], &["v"], NONE),
    ("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW v AS SELECT 1", Ddl, NONE, &["v"], NONE),
    ("CREATE PROCEDURE p() SELECT 1", Ddl, NONE, NONE, &["p"]),
    ("CREATE DEFINER=`root`@`%` FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1", Ddl, NONE, NONE, &["f"]),
    ("DROP PROCEDURE p", Ddl, NONE, NONE, &["p"]),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", Ddl, NONE, &["t"], NONE),
    ("CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t", Ddl, NONE, NONE, NONE),
    ("DROP EVENT e", Ddl, NONE, NONE, NONE),
    ("SELECT 1; CREATE TABLE x (a int)", Ddl, NONE, &["x"], NONE),
    // DCL.
    ("GRANT SELECT ON db.* TO 'u'@'%'", Dcl, NONE, NONE, NONE),
    ("GRANT ALL PRIVILEGES ON *.* TO u WITH GRANT OPTION", Dcl, NONE, NONE, NONE),
    ("REVOKE SELECT ON db.t FROM 'u'@'%'", Dcl, NONE, NONE, NONE),
    ("CREATE USER 'u'@'%' IDENTIFIED BY 'p'", Dcl, NONE, NONE, NONE),
    ("ALTER USER 'u'@'%' IDENTIFIED BY 'x'", Dcl, NONE, NONE, NONE),
    ("DROP USER 'u'@'%'", Dcl, NONE, NONE, NONE),
    ("SET PASSWORD FOR 'u'@'%' = 'x'", Dcl, NONE, NONE, NONE),
    ("CREATE ROLE r", Dcl, NONE, NONE, NONE),
    ("SET ROLE r", Dcl, NONE, NONE, NONE),
    ("SET DEFAULT ROLE r TO u", Dcl, NONE, NONE, NONE),
    // Admin.
    ("SELECT LOAD_FILE('/etc/passwd')", Admin, NONE, NONE, &["load_file"]),
    ("SELECT sys_exec('id')", Admin, NONE, NONE, &["sys_exec"]),
    ("SELECT * FROM t INTO OUTFILE '/tmp/x'", Admin, &["t"], NONE, NONE),
    ("SELECT a INTO OUTFILE '/tmp/x' FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' FROM t", Admin, &["t"], NONE, NONE),
    ("SELECT a INTO DUMPFILE '/tmp/x' FROM t", Admin, &["t"], NONE, NONE),
    ("LOAD DATA INFILE '/etc/passwd' INTO TABLE t", Admin, NONE, &["t"], NONE),
    ("KILL 5", Admin, NONE, NONE, NONE),
    ("KILL QUERY 5", Admin, NONE, NONE, NONE),
    ("SHUTDOWN", Admin, NONE, NONE, NONE),
    ("SET GLOBAL max_connections = 10", Admin, NONE, NONE, NONE),
    ("SET PERSIST max_connections = 10", Admin, NONE, NONE, NONE),
    ("SET @@global.max_connections = 10", Admin, NONE, NONE, NONE),
    ("SET @@GLOBAL.general_log = 0", Admin, NONE, NONE, NONE),
    ("SET sql_log_bin = 0", Admin, NONE, NONE, NONE),
    ("FLUSH PRIVILEGES", Admin, NONE, NONE, NONE),
    ("INSTALL PLUGIN p SONAME 'x.so'", Admin, NONE, NONE, NONE),
    ("CREATE FUNCTION sys_exec RETURNS INTEGER SONAME 'lib_mysqludf_sys.so'", Admin, NONE, NONE, &["sys_exec"]),
    ("CHANGE MASTER TO MASTER_HOST='h'", Admin, NONE, NONE, NONE),
    ("CHANGE REPLICATION SOURCE TO SOURCE_HOST='h'", Admin, NONE, NONE, NONE),
    ("START SLAVE", Admin, NONE, NONE, NONE),
    ("STOP REPLICA", Admin, NONE, NONE, NONE),
    ("RESET MASTER", Admin, NONE, NONE, NONE),
    ("PURGE BINARY LOGS TO 'mysql-bin.000010'", Admin, NONE, NONE, NONE),
    ("CREATE DATABASE d", Admin, NONE, NONE, NONE),
    ("DROP DATABASE d", Admin, NONE, NONE, NONE),
    ("OPTIMIZE TABLE t", Admin, NONE, &["t"], NONE),
    ("PREPARE s FROM @q", Admin, NONE, NONE, NONE),
    ("PREPARE s FROM 'DELETE FROM t WHERE a = ?'", Admin, NONE, &["t"], NONE),
    ("EXECUTE s", Admin, NONE, NONE, NONE),
    ("SELECT 1; GRANT ALL ON t TO x; SHUTDOWN", Admin, NONE, NONE, NONE),
    ("SELECT 1 /*!99999 ; DROP TABLE t */", Ddl, NONE, &["t"], NONE),
    ("RESTART", Admin, NONE, NONE, NONE),
    ("ALTER DATABASE d CHARACTER SET utf8mb4", Admin, NONE, NONE, NONE),
    ("CLONE LOCAL DATA DIRECTORY = '/tmp/clone'", Admin, NONE, NONE, NONE),
    ("CREATE TABLESPACE ts ADD DATAFILE 'ts.ibd'", Admin, NONE, NONE, NONE),
    ("SET SESSION binlog_format = 'STATEMENT'", Admin, NONE, NONE, NONE),
    ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", Other, NONE, NONE, NONE),
    ("BINLOG 'AAAA'", Admin, NONE, NONE, NONE),
    ("UNINSTALL PLUGIN p", Admin, NONE, NONE, NONE),
    ("CHECK TABLE t, db.u", Admin, &["db.u", "t"], NONE, NONE),
    ("ANALYZE TABLE t", Admin, &["t"], NONE, NONE),
    ("SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE", Admin, NONE, NONE, NONE),
    ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", Other, NONE, NONE, NONE),
    ("RENAME USER 'a'@'%' TO 'b'@'%'", Dcl, NONE, NONE, NONE),
    ("DROP ROLE r", Dcl, NONE, NONE, NONE),
    ("EXPLAIN DELETE FROM t", Write, NONE, &["t"], NONE),
    ("HANDLER t READ i = (1) WHERE a > 1 LIMIT 5", Read, &["t"], NONE, NONE),
    // Transactions and the rest.
    ("START TRANSACTION", Transaction, NONE, NONE, NONE),
    ("BEGIN", Transaction, NONE, NONE, NONE),
    ("COMMIT", Transaction, NONE, NONE, NONE),
    ("ROLLBACK", Transaction, NONE, NONE, NONE),
    ("SAVEPOINT s", Transaction, NONE, NONE, NONE),
    ("ROLLBACK TO SAVEPOINT s", Transaction, NONE, NONE, NONE),
    ("XA START 'x'", Transaction, NONE, NONE, NONE),
    ("SET SESSION sql_mode = ''", Other, NONE, NONE, NONE),
    ("SET @a := 1", Other, NONE, NONE, NONE),
    ("SET @a = (SELECT count(*) FROM t)", Read, &["t"], NONE, &["count"]),
    ("SET NAMES utf8mb4", Other, NONE, NONE, NONE),
    ("SET autocommit = 0", Other, NONE, NONE, NONE),
    ("USE db", Other, NONE, NONE, NONE),
    ("DEALLOCATE PREPARE s", Other, NONE, NONE, NONE),
    ("UNLOCK TABLES", Other, NONE, NONE, NONE),
    ("", Other, NONE, NONE, NONE),
    ("-- just a comment", Other, NONE, NONE, NONE),
    ("/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */", Other, NONE, NONE, NONE)
];

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn statement_table() {
    assert!(ROWS.len() >= 60);
    let mut failures = Vec::new();
    for (sql, class, read, written, functions) in ROWS {
        let a = analyze_mysql(sql);
        let got = (a.class, &a.tables_read, &a.tables_written, &a.functions);
        let want = (Some(*class), &set(read), &set(written), &set(functions));
        if got != want {
            failures.push(format!(
                "{sql}\n    want {want:?}\n    got  {got:?} {:?} {:?}",
                a.parse_error, a.reasons
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
}

/// Texts the analysis must not pass: they do not parse, or the server
/// could read them in ways the analysis cannot follow. Each with a part of
/// the message it must give.
const UNPARSED: &[(&str, &str)] = &[
    ("SELEC 1", "not understood"),
    ("SELECT 'x", "not closed"),
    ("SELECT `x", "not closed"),
    ("SELECT 1 /* x", "comment"),
    ("SELECT 1\0; DROP TABLE t", "NUL"),
    ("SELECT 1 \\G", "backslash"),
    (
        "CREATE PROCEDURE p() BEGIN DELETE FROM t; END",
        "BEGIN … END",
    ),
    ("BEGIN NOT ATOMIC DELETE FROM t; END", "not understood"),
    ("SELECT $$; DELETE FROM t; $$", "not understood"),
    // sqlparser's own statement loop stops at an END after a statement.
    ("SELECT 1 END; DELETE FROM t", "not understood"),
    ("SELECT 1 END DELETE FROM t", "not understood"),
    // A string that crosses the end of an executable comment, a comment
    // inside one: the server's reading depends on its version.
    ("SELECT /*! '*/' */ 1", "executable comment"),
    (
        "SELECT 1 /*!99999 ' */ ; DELETE FROM t; SELECT '*/",
        "executable comment",
    ),
    (
        "SELECT 1 /*!50000 -- */ DELETE FROM t",
        "executable comment",
    ),
    ("SELECT 1 /*!50000 # */ DELETE FROM t", "executable comment"),
    // With NO_BACKSLASH_ESCAPES the second statement is one sqlparser
    // does not know: what it does is unknown.
    ("SELECT 'a\\'; FOO BAR; -- '", "NO_BACKSLASH_ESCAPES"),
    (
        "CREATE USER u IDENTIFIED BY (SELECT pw FROM secrets)",
        "holds a query",
    ),
    (
        "ALTER TABLE t DISABLE KEYS, ADD c INT AS ((SELECT 1 FROM secrets))",
        "query",
    ),
];

#[test]
fn unparsed_texts_say_why() {
    for (sql, why) in UNPARSED {
        let a = analyze_mysql(sql);
        assert_eq!(a.class, None, "{sql} should not pass: {a:?}");
        let e = a.parse_error.unwrap_or_default();
        assert!(e.contains(why), "{sql}: {e:?} should mention {why:?}");
        assert_eq!(column_refs_mysql(sql), None, "{sql}");
    }
    let long = format!("SELECT 1{}", " + 1".repeat(20_000));
    let a = analyze_mysql(&long);
    assert_eq!(a.class, None);
    assert!(a.parse_error.unwrap_or_default().contains("too long"));
    let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
    assert!(
        analyze_mysql(&deep)
            .parse_error
            .unwrap_or_default()
            .contains("nested too deeply")
    );
    let huge = format!(
        "SELECT '{}'",
        "x".repeat(gatehouse_policy::analyze_mysql::MAX_MYSQL_TEXT)
    );
    assert!(
        analyze_mysql(&huge)
            .parse_error
            .unwrap_or_default()
            .contains("limit")
    );
}

/// The same text can mean another thing when the session's `sql_mode` has
/// NO_BACKSLASH_ESCAPES or ANSI_QUOTES: every reading counts.
#[test]
fn sql_modes_cannot_hide_statements() {
    for (sql, class) in [
        // Default: one string. NO_BACKSLASH_ESCAPES: 'a\' ends, DELETE runs.
        ("SELECT 'a\\'; DELETE FROM t; -- '", Write),
        ("SELECT \"a\\\"; DELETE FROM t; -- \"", Write),
        // Backticks have no escapes in any mode.
        ("SELECT `a\\`; DELETE FROM t; -- `", Write),
        // Escaped quotes that break the other readings: only the default counts.
        ("INSERT INTO t VALUES ('O\\'Brien', 'D\\'Arcy')", Write),
        ("SELECT 'C:\\\\dir\\\\' AS p", Read),
        ("SELECT '{\"a\":\"b\\\"c\"}'", Read),
        // `--` without a space is two minus signs, not a comment.
        ("SELECT 1 --x; DELETE FROM t", Write),
        ("SELECT 1 # x\n; DELETE FROM t", Write),
    ] {
        let a = analyze_mysql(sql);
        assert_eq!(a.class, Some(class), "{sql}: {a:?}");
    }
}

/// mysqldump's output, statement by statement as the mysql client sends it.
#[test]
fn mysqldump_statements() {
    for (sql, class) in [
        (
            "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
            Other,
        ),
        ("/*!50503 SET NAMES utf8mb4 */", Other),
        ("/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */", Other),
        ("/*!40103 SET TIME_ZONE='+00:00' */", Other),
        (
            "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */",
            Other,
        ),
        (
            "/*!40101 SET @saved_cs_client     = @@character_set_client */",
            Other,
        ),
        ("DROP TABLE IF EXISTS `t`", Ddl),
        ("LOCK TABLES `t` WRITE", Write),
        ("/*!40000 ALTER TABLE `t` DISABLE KEYS */", Ddl),
        (
            "INSERT INTO `t` VALUES (1,'a\\'b',NULL),(2,'c',NULL)",
            Write,
        ),
        ("UNLOCK TABLES", Other),
        ("SELECT /*!40001 SQL_NO_CACHE */ * FROM `t`", Read),
        (
            "/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */ /*!50001 VIEW `v` AS select 1 AS `a` */",
            Ddl,
        ),
    ] {
        let a = analyze_mysql(sql);
        assert_eq!(a.class, Some(class), "{sql}: {a:?}");
    }
}

#[test]
fn reasons() {
    let has = |sql: &str, why: &str| {
        let a = analyze_mysql(sql);
        assert!(
            a.reasons.iter().any(|r| r.contains(why)),
            "{sql}: {:?} should contain {why:?}",
            a.reasons
        );
    };
    has("USE shop", "changes database");
    has("SELECT * FROM t INTO OUTFILE '/tmp/x'", "INTO OUTFILE");
    has("SELECT load_file('/etc/passwd')", "calls load_file");
    has(
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
        "file on the database server",
    );
    has("SET GLOBAL general_log = 0", "configuration");
    has("EXPLAIN ANALYZE SELECT * FROM t", "runs the statement");
    has("PREPARE s FROM @q", "cannot see");
    let a = analyze_mysql("PREPARE s FROM @q");
    assert!(a.anonymous_code);
    let a = analyze_mysql("EXECUTE s USING @a");
    assert!(a.anonymous_code && a.class == Some(Admin), "{a:?}");
    // The text of a prepared statement is analysed as the server decodes it.
    let a = analyze_mysql("PREPARE s FROM 'SELECT \\'x\\' FROM secrets'");
    assert!(a.tables_read.contains("secrets"), "{a:?}");
    assert!(!analyze_mysql("SELECT 1").anonymous_code);
}

#[test]
fn column_references() {
    let r = column_refs_mysql(
        "SELECT upper(c.email) AS x, CONCAT(o.total, '') FROM shop.customers c JOIN orders o ON c.id = o.cid",
    )
    .expect("parses");
    assert!(
        r.names.contains("email") && r.names.contains("total"),
        "{r:?}"
    );
    assert!(!r.star);
    assert!(
        r.relations
            .contains(&("shop.customers".into(), Some("c".into()))),
        "{r:?}"
    );
    assert!(r.relations.contains(&("orders".into(), Some("o".into()))));
    assert!(column_refs_mysql("SELECT * FROM t").expect("parses").star);
    assert!(column_refs_mysql("SELECT t.* FROM t").expect("parses").star);
    assert!(column_refs_mysql("TABLE t").expect("parses").star);
    assert!(
        !column_refs_mysql("SELECT COUNT(*) FROM t")
            .expect("parses")
            .star,
        "count(*) reads no column"
    );
    // References hidden in unusual expressions are found.
    for (sql, name) in [
        ("SELECT CASE WHEN x > 0 THEN ssn ELSE '' END FROM p", "ssn"),
        ("SELECT JSON_EXTRACT(doc, '$.a') FROM p", "doc"),
        (
            "SELECT GROUP_CONCAT(ssn ORDER BY id SEPARATOR ',') FROM p",
            "ssn",
        ),
        ("SELECT ROW_NUMBER() OVER (PARTITION BY ssn) FROM p", "ssn"),
        ("SELECT (SELECT max(ssn) FROM p) AS m", "ssn"),
        ("SELECT doc->>'$.ssn' FROM p", "doc"),
        ("SELECT IF(a, ssn, NULL) FROM p", "ssn"),
        ("SELECT CAST(ssn AS CHAR) FROM p", "ssn"),
        ("SELECT CONVERT(ssn USING utf8mb4) FROM p", "ssn"),
        ("SELECT SUBSTRING(ssn, 1, 3) FROM p", "ssn"),
        // With ANSI_QUOTES, "ssn" is the column.
        ("SELECT upper(\"ssn\") FROM p", "ssn"),
    ] {
        let r = column_refs_mysql(sql).unwrap_or_else(|| panic!("{sql} parses"));
        assert!(r.names.contains(name), "{sql}: {r:?}");
    }
    assert!(
        column_refs_mysql("SELECT a INTO OUTFILE '/tmp/x' FROM t")
            .expect("parses")
            .copy_out
    );
    assert!(
        !column_refs_mysql("SELECT a INTO @v FROM t")
            .expect("parses")
            .copy_out
    );
    let h = column_refs_mysql("HANDLER secrets READ FIRST").expect("parses");
    assert!(h.star && h.relations.iter().any(|(n, _)| n == "secrets"));
    assert_eq!(column_refs_mysql("SELEC"), None);
}

/// The fuzz target's properties (fuzz/fuzz_targets/sql_analysis_mysql.rs),
/// on every statement above: a statement after one that parses is always
/// seen, and a statement inside `/*! … */` analyses as itself.
#[test]
fn nothing_hides_after_or_inside() {
    let texts = ROWS.iter().map(|r| r.0).chain(UNPARSED.iter().map(|u| u.0));
    for sql in texts {
        let a = analyze_mysql(sql);
        let Some(class) = a.class else { continue };
        let more = analyze_mysql(&format!("{sql}\n;DELETE FROM zz_fuzz_t"));
        assert!(
            more.class.is_some_and(|c| c >= Write.max(class))
                && more.tables_written.contains("zz_fuzz_t"),
            "after {sql:?}: {more:?}"
        );
        let wrapped = analyze_mysql(&format!("/*! {sql}\n*/"));
        if wrapped.class.is_some() {
            assert_eq!(
                (wrapped.class, &wrapped.tables_read, &wrapped.tables_written),
                (a.class, &a.tables_read, &a.tables_written),
                "{sql:?} inside /*! … */"
            );
        }
    }
}
