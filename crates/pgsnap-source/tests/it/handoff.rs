//! The handoff preflight: primary keys, replica identity, TOAST risk, partitioned parents.

use pgsnap_core::TableName;
use pgsnap_source::handoff::{handoff_preflight, handoff_preflight_with};
use pgsnap_test_support::{shared_cluster, unique_db};

use crate::common::exec;

const SQL: &str = r#"
CREATE TABLE public.risky (id int PRIMARY KEY, body text, n int);
CREATE TABLE public.full_ri (id int PRIMARY KEY, body text);
ALTER TABLE public.full_ri REPLICA IDENTITY FULL;
CREATE TABLE public.nokey (a int, b int);
CREATE TABLE public.plain (id bigint PRIMARY KEY, n int, d date);
CREATE TABLE public.keyed_text ("Key" text PRIMARY KEY);
CREATE TABLE public.gen (id int PRIMARY KEY, n int, g text GENERATED ALWAYS AS (n::text) STORED);
CREATE TABLE public.parted (id int, region text, doc jsonb, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE public.parted_a PARTITION OF public.parted FOR VALUES IN ('a');
CREATE TABLE public.parted_b PARTITION OF public.parted DEFAULT;
ALTER TABLE public.parted_a REPLICA IDENTITY FULL;
"#;

fn t(name: &str) -> TableName {
    TableName::new("public", name)
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_reports_keys_identity_and_toast_risk() {
    let cluster = shared_cluster();
    let db = unique_db("handoff_pre");
    exec(cluster, &db, SQL).await;
    let names: Vec<TableName> =
        ["risky", "full_ri", "nokey", "plain", "keyed_text", "gen", "parted", "missing"]
            .into_iter()
            .map(t)
            .collect();
    let pre = handoff_preflight(&cluster.conninfo(&db), &names).await.expect("preflight");
    assert_eq!(pre.tables.len(), names.len());

    // PK + text column under REPLICA IDENTITY DEFAULT: at risk, with the fix.
    let risky = pre.table(&t("risky")).unwrap();
    assert_eq!(risky.primary_key, ["id"]);
    assert_eq!(risky.replica_identity, 'd');
    assert_eq!(risky.toastable, ["body"]);
    assert_eq!(risky.toast_at_risk, ["body"]);
    assert_eq!(risky.fixes, [r#"ALTER TABLE "public"."risky" REPLICA IDENTITY FULL"#]);
    assert!(!risky.is_exact());
    assert!(risky.problems[0].contains("__debezium_unavailable_value"), "{:?}", risky.problems);
    assert!(risky.problems[0].contains("REPLICA IDENTITY FULL"), "{:?}", risky.problems);

    // The same under REPLICA IDENTITY FULL: not at risk.
    let full = pre.table(&t("full_ri")).unwrap();
    assert_eq!(full.replica_identity, 'f');
    assert_eq!(full.toastable, ["body"]);
    assert!(full.toast_at_risk.is_empty());
    assert!(full.is_exact(), "{:?}", full.problems);

    // No primary key: cannot be kept exact.
    let nokey = pre.table(&t("nokey")).unwrap();
    assert!(nokey.primary_key.is_empty());
    assert!(
        nokey.problems.iter().any(|p| p.contains("cannot be kept exact")),
        "{:?}",
        nokey.problems
    );

    // Nothing toastable, or toastable only in the key: exact.
    for name in ["plain", "keyed_text"] {
        let x = pre.table(&t(name)).unwrap();
        assert!(x.is_exact(), "{name}: {:?}", x.problems);
        assert!(x.toast_at_risk.is_empty());
    }
    assert_eq!(pre.table(&t("keyed_text")).unwrap().toastable, ["Key"]);
    // Generated columns are not decoded from the WAL, so they are never at risk.
    let gen_t = pre.table(&t("gen")).unwrap();
    assert!(gen_t.toastable.is_empty(), "{:?}", gen_t.toastable);
    assert!(gen_t.is_exact());

    // Partitioned parent: one topic per parent, identity checked per leaf (parted_a is FULL,
    // parted_b DEFAULT, so the fix names parted_b only).
    let parted = pre.table(&t("parted")).unwrap();
    assert!(parted.partitioned);
    assert_eq!(parted.primary_key, ["id", "region"]);
    assert_eq!(parted.replica_identity, 'd');
    assert_eq!(parted.toast_at_risk, ["doc"]);
    assert_eq!(parted.fixes, [r#"ALTER TABLE "public"."parted_b" REPLICA IDENTITY FULL"#]);
    assert!(parted.notes.iter().any(|n| n.contains("publish_via_partition_root")));

    let missing = pre.table(&t("missing")).unwrap();
    assert_eq!(missing.problems, ["table does not exist"]);

    // strict_errors lists exactly the tables with problems.
    let errs = pre.strict_errors();
    for name in ["risky", "nokey", "parted", "missing"] {
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("\"public\".\"{name}\":"))),
            "{name}: {errs:?}"
        );
    }
    for name in ["full_ri", "plain", "keyed_text", "gen"] {
        assert!(
            !errs.iter().any(|e| e.starts_with(&format!("\"public\".\"{name}\":"))),
            "{name}: {errs:?}"
        );
    }
    assert_eq!(pre.toast_at_risk().count(), 2);
    assert_eq!(pre.without_primary_key().count(), 2);

    // After the fix the table is exact; the same answer through an open client.
    exec(cluster, &db, "ALTER TABLE public.risky REPLICA IDENTITY FULL; ALTER TABLE public.parted_b REPLICA IDENTITY FULL").await;
    let client = cluster.connect(&db).await;
    let pre = handoff_preflight_with(&client, &[t("risky"), t("parted")]).await.unwrap();
    assert!(pre.strict_errors().is_empty(), "{:?}", pre.strict_errors());
    assert_eq!(pre.tables[1].replica_identity, 'f');
}
