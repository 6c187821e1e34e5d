//! Every common type, and every kind of table, round-trips byte-exactly through
//! PgSource + Coordinator + FileSink: the chunk files equal `COPY` under the same snapshot.

use std::sync::Arc;

use pgsnap_core::{DataFormat, SnapshotMode, TableKind};
use pgsnap_source::{PgSourceBuilder, SplitBy};
use pgsnap_test_support::{shared_cluster, unique_db};

use crate::common::{exec, run_to_files, verify_run};

/// Types and values that are easy to get wrong in COPY text.
const TYPES_SQL: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'we''ird "enum" \ value');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN email AS text CHECK (VALUE ~ '@');
CREATE TYPE pair AS (a int, b text);
CREATE TYPE floatrange AS RANGE (subtype = float8);

CREATE TABLE ints (a int2, b int4, c int8, o oid);
INSERT INTO ints VALUES
  (-32768, -2147483648, -9223372036854775808, 0),
  (32767, 2147483647, 9223372036854775807, 4294967295),
  (0, 0, 0, 1), (NULL, NULL, NULL, NULL);

CREATE TABLE nums (n numeric, p numeric(40,20), m money);
INSERT INTO nums VALUES
  ('NaN', NULL, 0), ('Infinity', 0, 12.34), ('-Infinity', -1.5, -12.34),
  (0, 12345678901234567890.12345678901234567890, NULL),
  ('-0.000000000000000000001', NULL, NULL),
  (('1' || repeat('0', 5000))::numeric, NULL, NULL),
  (('0.' || repeat('0', 16000) || '1')::numeric, NULL, NULL),
  ('1e-130'::numeric, NULL, NULL);

CREATE TABLE floats (r real, d double precision);
INSERT INTO floats VALUES
  ('Infinity', '-Infinity'), ('-Infinity', 'Infinity'), ('NaN', 'NaN'), ('-0', '-0'),
  (1.17549435e-38, 2.2250738585072014e-308), (3.4028235e38, 1.7976931348623157e308),
  (0.1, 0.1), (1.4e-45, 4.9e-324), (NULL, NULL), (1, 123456789.123456789);

CREATE TABLE texts (id int, t text, v varchar(10), c char(5), ch "char", nm name);
INSERT INTO texts VALUES
  (1, E'tab\there', 'a', 'a', 'a', 'a'),
  (2, E'new\nline', E'\n', E'\n', 'b', 'b'),
  (3, E'back\\slash \\N \\. \\\\', E'\\', E'\\', E'\\', E'\\'),
  (4, E'cr\rhere\r\n', NULL, NULL, NULL, NULL),
  (5, 'ünïcödé 日本語 🎉 ' || chr(8238) || 'rtl', 'é', 'é', 'x', 'ünï'),
  (6, '', '', '', '', ''),
  (7, NULL, NULL, NULL, NULL, NULL),
  (8, E'\\N', 'NULL', 'null', 'N', 'NULL'),
  (9, E'\\.', E'\\.', NULL, '.', '.'),
  (10, E'\x01\x02\x7f ctl \b \f \v', NULL, NULL, NULL, NULL),
  (11, repeat('long text ', 100000), NULL, NULL, NULL, NULL),
  (12, E'"quoted", comma; semicolon', NULL, NULL, NULL, NULL);

CREATE TABLE bins (id int, b bytea, flag bool, bits bit(8), vbits varbit);
INSERT INTO bins VALUES
  (1, '\x00', true, B'00001111', B''),
  (2, '\x', false, B'10000000', B'1'),
  (3, decode('00ff5c0a0d095c4e', 'hex'), NULL, NULL, NULL),
  (4, NULL, NULL, B'11111111', B'0101010101010101010101'),
  (5, decode(repeat('00ff', 300000), 'hex'), true, NULL, NULL);

CREATE TABLE times (id int, d date, t time, tz timetz, ts timestamp, tstz timestamptz, i interval);
INSERT INTO times VALUES
  (1, 'infinity', '24:00:00', '00:00:00+14', 'infinity', 'infinity', '178000000 years'),
  (2, '-infinity', '00:00:00', '23:59:59.999999-15:59', '-infinity', '-infinity', '-178000000 years'),
  (3, '4713-01-01 BC', '12:34:56.789', '12:00+05:30', '4713-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC', '-1 day +01:00'),
  (4, '5874897-12-31', '23:59:59.999999', '23:59:59.999999+00', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00', '1 year 2 mons 3 days 04:05:06.789'),
  (5, '2000-02-29', '01:02:03', '01:02:03-07', '2000-02-29 01:02:03.000001', '2000-02-29 01:02:03.000001+13', '0'),
  (6, '0001-01-01', '00:00:00.000001', '00:00:00.000001+00', '0001-01-01 00:00:00', '0001-01-01 00:00:00+01', '1 day -1 second'),
  (7, NULL, NULL, NULL, NULL, NULL, NULL),
  (8, '1999-12-31', '12:00', '12:00+00', '1999-12-31 23:59:59.5', '1999-12-31 23:59:59.5+05:45', '-0.000001 seconds');

CREATE TABLE docs (id int, j json, jb jsonb, x xml, tsv tsvector);
INSERT INTO docs VALUES
  (1, '  {"spaces" :  1, "dup": 1, "dup": 2}  ', '{"a": [1, 2.50, "x\ty", null], "b": {"c": "\\u00e9\n"}}', '<a x="1">text &amp; more</a>', 'a:1 b:2 ''quo te'':3'),
  (2, '"\u0000 nul escape"', '"\"quoted\""', '<!-- c --><b/>', ''),
  (3, 'null', 'null', NULL, NULL),
  (4, '[]', '{}', 'just text', 'x'),
  (5, NULL, NULL, NULL, NULL);

CREATE TABLE nets (id int, u uuid, ip inet, net cidr, mac macaddr, mac8 macaddr8, lsn pg_lsn);
INSERT INTO nets VALUES
  (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '16/B374D848'),
  (2, '00000000-0000-0000-0000-000000000000', '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', NULL, '0/0'),
  (3, NULL, '::ffff:1.2.3.4/128', '192.168.100.128/25', NULL, NULL, 'FFFFFFFF/FFFFFFFF'),
  (4, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE arrays (id int, ia int[], ta text[], na int[][], ba bytea[], ma mood[], pa pair[], za int[], ja jsonb[]);
INSERT INTO arrays VALUES
  (1, '{1,NULL,3}', '{"a b","c\"d","NULL",NULL,"",x,"back\\slash","tab\there"}', '{{1,2},{3,4}}', '{"\\x00ff",NULL}', '{sad,happy}', ARRAY[ROW(1,'x y')::pair, ROW(NULL,NULL)::pair], '[0:1]={1,2}', ARRAY['{"k": [1]}'::jsonb]),
  (2, '{}', '{}', '{{{1}},{{2}}}', '{}', '{}', '{}', '{}', '{}'),
  (3, NULL, ARRAY[E'new\nline', E'cr\r', 'ü'], NULL, NULL, NULL, NULL, NULL, NULL),
  (4, ARRAY[NULL]::int[], ARRAY[NULL, '']::text[], '{{NULL,NULL}}', ARRAY[NULL]::bytea[], ARRAY[NULL]::mood[], ARRAY[NULL]::pair[], '[-5:-4]={7,8}', ARRAY[NULL]::jsonb[]);

CREATE TABLE customs (id int, m mood, p posint, e email, c pair, r int4range, nr numrange, tr tstzrange, fr floatrange, mr int4multirange, dr daterange);
INSERT INTO customs VALUES
  (1, 'we''ird "enum" \ value', 1, 'a@b', ROW(1, E'x\ty "z"'), '[1,10)', '(,)', '[2000-01-01 00:00+00, infinity)', '[-Infinity, 0]', '{[1,3),[5,7)}', '[2000-01-01,)'),
  (2, 'sad', 2147483647, 'ü@ü', ROW(NULL, NULL), 'empty', '[1.5,2.5]', 'empty', '(,)', '{}', 'empty'),
  (3, NULL, NULL, NULL, ROW(NULL, ''), NULL, NULL, NULL, NULL, NULL, NULL),
  (4, 'happy', 5, '@', NULL, '(,5]', '[-1e-20,)', '("2000-01-01 00:00+00","2000-01-02 00:00+00")', '[NaN, NaN]', '{(,)}', '(,)');

CREATE TABLE geo (id int, p point, b box, c circle, l line, s lseg, pa path, po polygon);
INSERT INTO geo VALUES
  (1, '(1.5,-0)', '((0,0),(1,1))', '<(0,0),1.5>', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1),(2,0))', '((0,0),(1,1),(1,0))'),
  (2, '(NaN,Infinity)', NULL, NULL, NULL, NULL, '[(0,0),(1,1)]', NULL);

-- Empty, without a primary key (with duplicate rows), and without any column.
CREATE TABLE empty_t (id int PRIMARY KEY, x text);
CREATE TABLE nopk (a int, b text);
INSERT INTO nopk VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, NULL), (NULL, NULL), (NULL, NULL);
CREATE TABLE nocols ();
INSERT INTO nocols DEFAULT VALUES; INSERT INTO nocols DEFAULT VALUES; INSERT INTO nocols DEFAULT VALUES;
CREATE TABLE empty_nocols ();

-- Generated and dropped columns.
CREATE TABLE gen (id int PRIMARY KEY, a int, dropme text, b int GENERATED ALWAYS AS (a * 2) STORED, c text,
                  d text GENERATED ALWAYS AS (upper(c)) STORED);
INSERT INTO gen (id, a, dropme, c) VALUES (1, 10, 'gone', 'x'), (2, NULL, 'gone', NULL), (3, -3, 'gone', E'tab\t');
ALTER TABLE gen DROP COLUMN dropme;
INSERT INTO gen (id, a, c) VALUES (4, 4, 'after drop');
ALTER TABLE gen ADD COLUMN added int DEFAULT 7;
INSERT INTO gen (id, a, c, added) VALUES (5, 5, 'after add', NULL);

-- Partitioned, with sub-partitions, a default partition, a dropped column in the parent,
-- and a leaf created on its own with another column order, then attached.
CREATE TABLE parts (id int, region text, dropped int, amount numeric, note text) PARTITION BY LIST (region);
ALTER TABLE parts DROP COLUMN dropped;
CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu') PARTITION BY RANGE (id);
CREATE TABLE parts_eu_lo PARTITION OF parts_eu FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE parts_eu_hi PARTITION OF parts_eu FOR VALUES FROM (100) TO (MAXVALUE);
CREATE TABLE parts_us (note text, extra_dropped int, amount numeric, region text, id int);
ALTER TABLE parts_us DROP COLUMN extra_dropped;
ALTER TABLE parts ATTACH PARTITION parts_us FOR VALUES IN ('us');
CREATE TABLE parts_default PARTITION OF parts DEFAULT;
CREATE TABLE parts_empty PARTITION OF parts FOR VALUES IN ('nobody');
INSERT INTO parts SELECT g, 'eu', g * 1.5, 'eu note ' || g FROM generate_series(1, 300) g;
INSERT INTO parts SELECT g, 'us', g * 2.5, E'us\tnote ' || g FROM generate_series(1, 200) g;
INSERT INTO parts SELECT g, 'r' || (g % 7), NULL, NULL FROM generate_series(1, 100) g;

-- Plain inheritance: parent and child are each copied once.
CREATE TABLE animals (id int, name text);
CREATE TABLE dogs (breed text) INHERITS (animals);
CREATE TABLE puppies (age int) INHERITS (dogs);
INSERT INTO animals VALUES (1, 'generic'), (2, 'other');
INSERT INTO dogs VALUES (3, 'rex', 'lab');
INSERT INTO puppies VALUES (4, 'bit', 'pug', 1);
"#;

/// Every table `TYPES_SQL` creates that is reported on its own, with its kind.
const EXPECTED_TABLES: &[(&str, TableKind)] = &[
    ("animals", TableKind::Table),
    ("arrays", TableKind::Table),
    ("bins", TableKind::Table),
    ("customs", TableKind::Table),
    ("docs", TableKind::Table),
    ("dogs", TableKind::Table),
    ("empty_nocols", TableKind::Table),
    ("empty_t", TableKind::Table),
    ("floats", TableKind::Table),
    ("gen", TableKind::Table),
    ("geo", TableKind::Table),
    ("ints", TableKind::Table),
    ("nets", TableKind::Table),
    ("nocols", TableKind::Table),
    ("nopk", TableKind::Table),
    ("nums", TableKind::Table),
    ("parts", TableKind::Partitioned),
    ("puppies", TableKind::Table),
    ("texts", TableKind::Table),
    ("times", TableKind::Table),
];

async fn round_trip(format: DataFormat) {
    let cluster = shared_cluster();
    let db = unique_db(&format!("types_{}", format.as_str()));
    exec(cluster, &db, TYPES_SQL).await;
    // Database defaults unlike the pinned settings: output must not depend on them.
    exec(
        cluster,
        &db,
        &format!(
            "ALTER DATABASE \"{db}\" SET DateStyle = 'SQL, DMY';
             ALTER DATABASE \"{db}\" SET IntervalStyle = 'iso_8601';
             ALTER DATABASE \"{db}\" SET TimeZone = 'Asia/Kathmandu';
             ALTER DATABASE \"{db}\" SET extra_float_digits = -3;
             ALTER DATABASE \"{db}\" SET bytea_output = 'escape';"
        ),
    )
    .await;
    let source = Arc::new(
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Export)
            .open()
            .await
            .expect("open"),
    );
    let run = run_to_files(&source, SplitBy::Auto, 64_000_000, 3, format).await;
    let expected = verify_run(cluster, &db, &source.snapshot_info().name, &run).await;

    // Every table once, none of the partitions on its own.
    let names: Vec<(String, TableKind)> = run
        .manifest
        .tables
        .iter()
        .map(|t| {
            assert_eq!(t.schema.name.schema, "public");
            (t.schema.name.name.clone(), t.schema.kind)
        })
        .collect();
    let want: Vec<(String, TableKind)> =
        EXPECTED_TABLES.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect();
    assert_eq!(names, want);

    // Not vacuous: the oracle saw the rows the fixtures inserted.
    let idx = |n: &str| run.manifest.tables.iter().position(|t| t.schema.name.name == n).unwrap();
    if format == DataFormat::Text {
        let rows = |n: &str| expected[idx(n)].iter().filter(|&&c| c == b'\n').count();
        assert_eq!(rows("texts"), 12);
        assert_eq!(rows("parts"), 600);
        assert_eq!(rows("nopk"), 6);
        assert_eq!(rows("animals"), 2, "COPY of an inheritance parent holds only its own rows");
        assert_eq!(rows("dogs"), 1);
        assert_eq!(expected[idx("nocols")], b"\n\n\n");
        assert!(expected[idx("empty_t")].is_empty());
    }
    source.close().await.unwrap();

    if format != DataFormat::Text {
        return;
    }
    // Manifest shape: generated columns apart, dropped columns gone, partitions listed.
    let gtab = run.table("public", "gen");
    let cols: Vec<&str> = gtab.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["id", "a", "c", "added"]);
    assert_eq!(gtab.schema.generated_columns, ["b", "d"]);
    assert_eq!(gtab.schema.primary_key, ["id"]);
    let jg = run.json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "gen")
        .expect("gen in manifest.json");
    assert_eq!(jg["generated_columns"], serde_json::json!(["b", "d"]));
    assert_eq!(
        jg["columns"][0],
        serde_json::json!({"name": "id", "type": "integer", "nullable": false})
    );
    assert_eq!(jg["schema"], "public");
    assert_eq!(jg["kind"], "table");

    let parts = run.table("public", "parts");
    let cols: Vec<&str> = parts.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["id", "region", "amount", "note"]);
    let leaves: Vec<String> = parts.partitions.iter().map(|p| p.name.clone()).collect();
    assert_eq!(leaves, ["parts_default", "parts_empty", "parts_eu_hi", "parts_eu_lo", "parts_us"]);
    for c in &parts.chunks {
        assert!(parts.partitions.contains(&c.relation), "{:?} read from a non-leaf", c.relation);
    }
    let jp = run.json["tables"].as_array().unwrap().iter().find(|t| t["name"] == "parts").unwrap();
    assert_eq!(jp["kind"], "partitioned");
    assert_eq!(jp["partitions"].as_array().unwrap().len(), 5);
    // The leaf with its own column order is read in the parent's order: its rows, which
    // the multiset comparison above already matched, start with the id.
    let us: Vec<u8> = run
        .chunk_contents(parts)
        .concat()
        .split(|&c| c == b'\n')
        .find(|l| l.starts_with(b"7\tus\t"))
        .unwrap()
        .to_vec();
    assert_eq!(us, b"7\tus\t17.5\tus\\tnote 7");
    // Each inheritance table is read without its children.
    for (t, n) in [("animals", 2), ("dogs", 1), ("puppies", 1)] {
        let rows: u64 = run.table("public", t).chunks.iter().map(|c| c.rows).sum();
        assert_eq!(rows, n, "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_and_table_kind_round_trips_as_copy_text() {
    round_trip(DataFormat::Text).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_as_copy_csv() {
    round_trip(DataFormat::Csv).await;
}
