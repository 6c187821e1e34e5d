//! `--include` / `--exclude` with psql patterns, through the command line.

use std::collections::BTreeSet;

use pgsnap_test_support::unique_db;

use crate::support::*;

fn plan(src: &str, out: &str, patterns: &[&str]) -> Vec<String> {
    let mut args = vec!["--source", src, "--out", out, "--plan", "--json"];
    args.extend_from_slice(patterns);
    let r = run(&args);
    r.expect_code(0);
    table_names(&r.json())
}

#[test]
fn include_and_exclude_follow_psql_patterns() {
    let db = unique_db("x_select");
    sql(
        &db,
        r#"CREATE TABLE a1 (x int); CREATE TABLE a2 (x int); CREATE TABLE "MixedCase" (x int);
           CREATE TABLE mixedcase (x int);
           CREATE SCHEMA "Other Schema"; CREATE TABLE "Other Schema".b (x int);
           CREATE SCHEMA other; CREATE TABLE other.c (x int); CREATE TABLE other.d (x int);
           INSERT INTO "MixedCase" VALUES (1), (2); INSERT INTO mixedcase VALUES (3);
           INSERT INTO other.c VALUES (4); INSERT INTO other.d VALUES (5); INSERT INTO a1 VALUES (6);"#,
    );
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let o = arg(&out);
    let all = [
        "Other Schema.b",
        "other.c",
        "other.d",
        "public.MixedCase",
        "public.a1",
        "public.a2",
        "public.mixedcase",
    ];
    assert_eq!(plan(&src, o, &[]), all);
    assert_eq!(
        plan(&src, o, &["--include", "public.*", "--exclude", "a2"]),
        ["public.MixedCase", "public.a1", "public.mixedcase"]
    );
    // Unquoted names fold to lower case; quoted ones keep their case.
    assert_eq!(plan(&src, o, &["--include", "MixedCase"]), ["public.mixedcase"]);
    assert_eq!(plan(&src, o, &["--include", r#""MixedCase""#]), ["public.MixedCase"]);
    assert_eq!(plan(&src, o, &["--include", r#"public."Mixed"*"#]), ["public.MixedCase"]);
    assert_eq!(plan(&src, o, &["--include", "a?"]), ["public.a1", "public.a2"]);
    assert_eq!(plan(&src, o, &["--include", r#""Other Schema".*"#]), ["Other Schema.b"]);
    assert_eq!(
        plan(&src, o, &["--exclude", "public.*", "--exclude", "other.c"]),
        ["Other Schema.b", "other.d"]
    );
    // Every --include must match something (`other.C` folds to `other.c` and does); the
    // error names the pattern and how to quote.
    let r = run(&[
        "--source",
        &src,
        "--out",
        o,
        "--json",
        "--include",
        "other.C",
        "--include",
        "nomatch",
    ]);
    r.expect_code(3);
    assert!(r.stderr.contains("nomatch") && r.stderr.contains("quote"), "{}", r.stderr);

    // A real run with a selection copies exactly those tables.
    let r = run(&[
        "--source",
        &src,
        "--out",
        o,
        "--json",
        "--include",
        r#""MixedCase""#,
        "--include",
        "other.*",
        "--exclude",
        "other.d",
    ]);
    r.expect_code(0);
    let report = r.json();
    assert_eq!(table_names(&report), ["other.c", "public.MixedCase"]);
    let m = manifest(&out);
    assert_eq!(table_names(&m), ["other.c", "public.MixedCase"]);
    assert_eq!(m["options"]["include"], serde_json::json!([r#""MixedCase""#, "other.*"]));
    assert_eq!(m["options"]["exclude"], serde_json::json!(["other.d"]));
    let content = verify_chunks(&out, &m);
    assert_eq!(sorted_lines(&content["public.MixedCase"]), ["1", "2"]);
    assert_eq!(sorted_lines(&content["other.c"]), ["4"]);
    let dirs: BTreeSet<String> = files_under(&out)
        .into_iter()
        .filter_map(|f| f.split_once('/').map(|(d, _)| d.to_owned()))
        .collect();
    assert_eq!(dirs, BTreeSet::from(["other.c".to_owned(), "public.MixedCase".to_owned()]));
}
