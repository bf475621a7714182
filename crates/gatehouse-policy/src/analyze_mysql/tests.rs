use super::*;

#[test]
fn readings_follow_server_versions() {
    let texts = |sql: &str| -> Vec<String> {
        readings(sql)
            .expect("lexes")
            .into_iter()
            .map(|(t, _)| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(texts("SELECT 1"), vec!["SELECT 1"]);
    // Every executable comment as code first; then each server version
    // that makes a difference.
    assert_eq!(
        texts("SELECT 1 /*!50000 , 2 */ /*!80000 , 3 */"),
        vec!["SELECT 1 , 2 , 3", "SELECT 1", "SELECT 1 , 2"]
    );
    // MySQL skips /*M! … */; MariaDB runs it.
    assert_eq!(
        texts("SELECT 1 /*M! , 2 */"),
        vec!["SELECT 1 , 2", "SELECT 1"]
    );
    // A backslash: the NO_BACKSLASH_ESCAPES reading too, when it differs.
    assert_eq!(texts("SELECT 'a\\\\b'").len(), 1, "same strings either way");
    assert_eq!(
        texts("SELECT 'a\\'; DELETE FROM t; -- '"),
        vec![
            "SELECT 'a\\\\\\'; DELETE FROM t; -- '",
            "SELECT 'a\\\\'; DELETE FROM t;"
        ]
    );
    let many: String = (0..20)
        .map(|v| format!("/*!{} , {v} */", 50000 + v))
        .collect();
    assert!(
        readings(&format!("SELECT 1 {many}")).is_err(),
        "too many readings"
    );
}

#[test]
fn runs_of_tokens_are_bounded() {
    let t = |sql: &str| check_runs(&tokens_of(sql).expect("tokenizes"));
    assert!(t(&format!("SELECT 1{}", " + 1".repeat(MAX_RUN / 2 - 2))).is_ok());
    assert!(t(&format!("SELECT 1{}", " + 1".repeat(MAX_RUN / 2 + 1))).is_err());
    // Commas and parentheses end a run: long lists are fine.
    let list = vec!["(1, 'a', NULL)"; 5000].join(", ");
    assert!(t(&format!("INSERT INTO t VALUES {list}")).is_ok());
}

/// The deepest inputs the limits allow are analysed whatever the caller's
/// stack (the analysis runs on its own threads), and deeper ones refused.
#[test]
fn deep_inputs_do_not_overflow_the_callers_stack() {
    let chain = format!(
        "SELECT * FROM t WHERE {}",
        (0..MAX_RUN / 4 - 10)
            .map(|i| format!("a = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    let mut derived = String::from("SELECT 1");
    for _ in 0..12 {
        derived = format!("SELECT * FROM ({derived}) x WHERE NOT NOT EXISTS (SELECT 1)");
    }
    let nested = format!(
        "SELECT {}1{}",
        "CASE WHEN 1 THEN ".repeat(20),
        " END".repeat(20)
    );
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let a = analyze_mysql(&chain);
            assert_eq!(a.class, Some(Class::Read), "{:?}", a.parse_error);
            assert!(column_refs_mysql(&chain).is_some_and(|r| r.names.contains("a")));
            assert_eq!(analyze_mysql(&derived).class, Some(Class::Read));
            assert_eq!(analyze_mysql(&nested).class, Some(Class::Read));
            // Each kind of nesting, from shallow to past the limit: the
            // shallow ones parse, the deepest are refused, none overflows.
            let kinds: [fn(usize) -> String; 6] = [
                |n| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
                |n| {
                    format!(
                        "SELECT * FROM {}t{}",
                        "(SELECT * FROM ".repeat(n),
                        ") x".repeat(n)
                    )
                },
                |n| {
                    format!(
                        "SELECT * FROM {}t{}",
                        "(t JOIN ".repeat(n),
                        " ON 1)".repeat(n)
                    )
                },
                |n| format!("SELECT {}1", "NOT ".repeat(n)),
                |n| format!("SELECT {}1{}", "f(".repeat(n), ")".repeat(n)),
                |n| {
                    format!(
                        "SELECT {}1{}",
                        "CASE WHEN 1 THEN ".repeat(n),
                        " END".repeat(n)
                    )
                },
            ];
            for kind in kinds {
                for n in 1..=100 {
                    let a = analyze_mysql(&kind(n));
                    if n <= 5 {
                        assert!(a.class.is_some(), "{}: {:?}", kind(n), a.parse_error);
                    }
                    if n == 100 {
                        assert_eq!(a.class, None, "{}", kind(n));
                    }
                }
            }
        })
        .expect("spawn");
    assert!(handle.join().is_ok());
}

#[test]
fn every_form_of_kill_is_admin_and_said_to_be_a_kill() {
    for sql in [
        "KILL 5",
        "kill query 5;",
        "KILL CONNECTION 5",
        "KILL HARD QUERY 5",
        "KILL SOFT 5",
        "KILL USER app",
        "KILL QUERY ID 7",
        "SELECT 1; KILL 5",
        "/*!50000 KILL 5 */",
    ] {
        let a = analyze_mysql(sql);
        assert_eq!(a.class, Some(Class::Admin), "{sql}: {a:?}");
        assert!(
            a.reasons.iter().any(|r| r == KILL_REASON),
            "{sql}: {:?}",
            a.reasons
        );
    }
    assert!(
        !analyze_mysql("SELECT 'KILL 5'")
            .reasons
            .iter()
            .any(|r| r == KILL_REASON)
    );
}

#[test]
fn leaving_read_only_mode_is_seen_in_every_spelling() {
    for sql in [
        "SET tx_read_only = 0",
        "SET SESSION tx_read_only = OFF",
        "SET @@session.tx_read_only = 0",
        "SET @@tx_read_only := 0",
        "SET LOCAL `transaction_read_only` = 0",
        "set names utf8mb4, @@SESSION.TX_READ_ONLY = 0",
        "SET SESSION TRANSACTION READ WRITE",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
        "START TRANSACTION READ WRITE",
        "start transaction with consistent snapshot, read write",
        "SET STATEMENT tx_read_only = 0 FOR INSERT INTO t VALUES (1)",
        "SELECT 1; SET tx_read_only = 0",
        "/*!100000 SET tx_read_only = 0 */",
        "/*M!100000 SET tx_read_only = 0 */",
        "SELECT 1 /*!, 2; SET tx_read_only = 0 */",
        "BEGIN NOT ATOMIC SET tx_read_only = 0; INSERT INTO t VALUES (1); END",
        "PREPARE p FROM @s",
        "PREPARE p FROM CONCAT('SET tx_r', 'ead_only = 0')",
        "PREPARE p FROM 'SET tx_read_only = 0'",
        r"PREPARE p FROM 'SET \'x\' = 1; SET tx_read_only = 0'",
        "PREPARE p FROM 'PREPARE q FROM ''SET tx_read_only = 0'''",
        "EXECUTE IMMEDIATE CONCAT('SET tx_r', 'ead_only = 0')",
        "EXECUTE IMMEDIATE 'SET SESSION TRANSACTION READ WRITE'",
        "EXECUTE IMMEDIATE @s",
        "SELECT 'unterminated READ",
    ] {
        assert!(lifts_read_only_mysql(sql), "{sql}");
    }
    for sql in [
        "SELECT @@tx_read_only",
        "SELECT 'SET tx_read_only = 0', 'READ WRITE'",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET TRANSACTION READ ONLY",
        "START TRANSACTION READ ONLY",
        "SET @read_only_hint = 1",
        "SELECT read_only FROM settings",
        "PREPARE p FROM 'SELECT 1'",
        "EXECUTE p USING @a",
        "EXECUTE IMMEDIATE 'SELECT ?' USING 1",
        "LOCK TABLES t READ",
        // Text that cannot be read, but holds no word that could leave.
        "SELECT 'unterminated",
    ] {
        assert!(!lifts_read_only_mysql(sql), "{sql}");
    }
}

#[test]
fn a_word_is_mentioned_in_any_case_anywhere() {
    for sql in [
        "PREPARE p FROM @s",
        "prepare",
        "/*!PrEpArE*/",
        "x_prepared",
        "SET @a=1;Prepare",
    ] {
        assert!(mentions(sql, b"prepare"), "{sql}");
    }
    for sql in ["", "prepar", "SELECT 'prep are'", "PREPAR E"] {
        assert!(!mentions(sql, b"prepare"), "{sql}");
    }
}
