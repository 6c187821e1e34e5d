//! Table selection patterns with the rules of `psql` and `pg_dump -t`.
//!
//! A [`TablePattern`] is written the way `pg_dump -t` and psql's `\d` commands
//! take them, and is turned into two anchored POSIX regular expressions, one
//! for the schema and one for the table name. The selection itself runs in
//! PostgreSQL with the `~` operator, so the regex dialect is PostgreSQL's own
//! (advanced regular expressions), exactly as in psql.
//!
//! # Rules
//!
//! These follow the "Patterns" section of the psql documentation:
//!
//! - An unquoted `.` separates the schema from the table name: `sales.orders`.
//!   A pattern without a `.` matches that table name in **every** schema
//!   (as `pg_dump -t` does). Three-part names (`db.schema.table`) are
//!   rejected, as are empty parts (`sales.`, `.orders`).
//! - Unquoted ASCII letters are folded to lower case, as PostgreSQL folds
//!   unquoted identifiers: `Sales.Orders` selects `sales.orders`.
//! - `*` matches any sequence of characters (regex `.*`) and `?` matches any
//!   single character (regex `.`).
//! - Double quotes keep case and make everything inside them literal,
//!   including `*`, `?`, `.` and every other regex special character. Inside
//!   double quotes, `""` stands for one literal `"`. Quotes can cover part of
//!   a name: `"My"Table*` matches names starting with `Mytable`.
//! - `$` is always matched literally (it is a legal identifier character, and
//!   the pattern is anchored anyway).
//! - Other regex special characters outside quotes keep their regex meaning,
//!   so `order_[0-9]+` or `(a|b)_log` work. Remember that `.` is the
//!   separator: write `?` where a regex would use `.`.
//! - The whole name must match: each part becomes `^(...)$`.
//!
//! | pattern          | schema regex     | name regex         | selects                                    |
//! |------------------|------------------|--------------------|--------------------------------------------|
//! | `public.*`       | `^(public)$`     | `^(.*)$`           | every table in schema `public`             |
//! | `"MyTable"`      | any schema       | `^(MyTable)$`      | `MyTable` (mixed case) in every schema     |
//! | `sales.order_*`  | `^(sales)$`      | `^(order_.*)$`     | `order_2024`, `order_lines`, … in `sales`  |
//! | `"weird.name"`   | any schema       | `^(weird\.name)$`  | the table literally called `weird.name`    |
//! | `*.t?`           | any schema       | `^(t.)$`           | `t1`, `tx`, … in every schema              |
//!
//! # Using the regexes
//!
//! Pass the regexes as bind parameters (or through [`quote_literal`]) and
//! compare them the way psql does, with the default collation:
//!
//! ```sql
//! SELECT n.nspname, c.relname
//! FROM pg_catalog.pg_class c
//! JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
//! WHERE c.relname OPERATOR(pg_catalog.~) $1 COLLATE pg_catalog.default
//!   AND ($2::text IS NULL OR n.nspname OPERATOR(pg_catalog.~) $2 COLLATE pg_catalog.default)
//! ```
//!
//! # Example
//!
//! ```
//! use pgsnap_source::pattern::TablePattern;
//!
//! let p = TablePattern::parse("Sales.\"Order\"_*").unwrap();
//! assert_eq!(p.schema_regex(), Some("^(sales)$"));
//! assert_eq!(p.name_regex(), "^(Order_.*)$");
//!
//! let any_schema = TablePattern::parse("orders").unwrap();
//! assert_eq!(any_schema.schema_regex(), None);
//! ```

use std::fmt;

/// Characters that must be escaped to be literal in a PostgreSQL regex
/// (the set psql escapes inside double quotes).
const REGEX_SPECIALS: &str = "|*+?()[]{}.^$\\";

/// The regex a part made only of `*` turns into; such a schema part is
/// reported as "any schema".
const MATCH_ALL: &str = "^(.*)$";

/// A table selection pattern (`schema.table`, with `*`, `?` and quoting),
/// compiled to anchored PostgreSQL regexes.
///
/// See the [module documentation](self) for the rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TablePattern {
    pattern: String,
    schema_regex: Option<String>,
    name_regex: String,
}

impl TablePattern {
    /// Parses a pattern written with psql / `pg_dump -t` rules.
    ///
    /// # Errors
    ///
    /// Returns [`PatternError`] for an empty pattern, a part that is empty
    /// (`sales.`), more than two dotted parts (`db.sales.orders`) or an
    /// unterminated double quote.
    ///
    /// # Example
    ///
    /// ```
    /// use pgsnap_source::pattern::TablePattern;
    ///
    /// let p = TablePattern::parse("public.*").unwrap();
    /// assert_eq!(p.schema_regex(), Some("^(public)$"));
    /// assert_eq!(p.name_regex(), "^(.*)$");
    /// ```
    pub fn parse(pat: &str) -> Result<TablePattern, PatternError> {
        if pat.trim().is_empty() {
            return Err(PatternError::Empty);
        }

        // Regex bodies of the dotted parts, in order.
        let mut parts: Vec<String> = vec![String::new()];
        let mut in_quotes = false;
        let mut chars = pat.chars().peekable();
        while let Some(ch) = chars.next() {
            let cur = parts.last_mut().expect("parts is never empty");
            match ch {
                '"' => {
                    if in_quotes && chars.peek() == Some(&'"') {
                        chars.next();
                        cur.push('"');
                    } else {
                        in_quotes = !in_quotes;
                    }
                }
                '$' => cur.push_str("\\$"),
                '.' if !in_quotes => {
                    if parts.len() == 2 {
                        return Err(PatternError::TooManyDots { pattern: pat.to_owned() });
                    }
                    parts.push(String::new());
                }
                '*' if !in_quotes => cur.push_str(".*"),
                '?' if !in_quotes => cur.push('.'),
                c if !in_quotes => cur.push(c.to_ascii_lowercase()),
                c => {
                    if REGEX_SPECIALS.contains(c) {
                        cur.push('\\');
                    }
                    cur.push(c);
                }
            }
        }
        if in_quotes {
            return Err(PatternError::UnterminatedQuote { pattern: pat.to_owned() });
        }
        // An empty part can only come from an unquoted separator at the
        // start or end (`""` yields an empty part too: it names nothing).
        if parts.iter().any(String::is_empty) {
            return Err(PatternError::EmptyPart { pattern: pat.to_owned() });
        }

        let anchored = |body: &str| format!("^({body})$");
        let name_regex = anchored(parts.last().expect("parts is never empty"));
        let schema_regex = if parts.len() == 2 {
            Some(anchored(&parts[0])).filter(|re| re != MATCH_ALL)
        } else {
            None
        };
        Ok(TablePattern { pattern: pat.to_owned(), schema_regex, name_regex })
    }

    /// The anchored regex (`^(...)$`) the schema name must match, or `None`
    /// when any schema matches (no schema part, or a schema part of `*`).
    pub fn schema_regex(&self) -> Option<&str> {
        self.schema_regex.as_deref()
    }

    /// The anchored regex (`^(...)$`) the table name must match.
    pub fn name_regex(&self) -> &str {
        &self.name_regex
    }

    /// The pattern as it was written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl std::str::FromStr for TablePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TablePattern::parse(s)
    }
}

/// Why a table pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty or only whitespace.
    #[error(
        "empty table pattern; expected `table`, `schema.table`, or a pattern such as `public.*`"
    )]
    Empty,
    /// The pattern has more than one unquoted `.`.
    #[error(
        "invalid table pattern `{pattern}`: too many dotted names (at most `schema.table`; \
         quote a `.` that is part of a name, as in `\"my.table\"`)"
    )]
    TooManyDots {
        /// The pattern as written.
        pattern: String,
    },
    /// The schema or the table part is empty, as in `sales.` or `.orders`.
    #[error(
        "invalid table pattern `{pattern}`: the schema or table part is empty \
         (use `*` to match any name, as in `sales.*`)"
    )]
    EmptyPart {
        /// The pattern as written.
        pattern: String,
    },
    /// A double quote is not closed.
    #[error("invalid table pattern `{pattern}`: unterminated double quote")]
    UnterminatedQuote {
        /// The pattern as written.
        pattern: String,
    },
}

/// Quotes an SQL identifier (re-exported from `pgsnap-core`, the one implementation).
///
/// # Example
///
/// ```
/// use pgsnap_source::pattern::quote_ident;
///
/// assert_eq!(quote_ident("Order"), "\"Order\"");
/// assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
/// ```
pub use pgsnap_core::quote_ident;

/// Quotes an SQL string literal, doubling single quotes.
///
/// If the string contains a backslash, the `E'...'` form is used with the
/// backslashes doubled, so the result means the same whatever
/// `standard_conforming_strings` is set to (PostgreSQL's `quote_literal`
/// does the same). Note that there is no leading space before `E`.
///
/// # Example
///
/// ```
/// use pgsnap_source::pattern::quote_literal;
///
/// assert_eq!(quote_literal("it's"), "'it''s'");
/// assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
/// ```
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regexes(pat: &str) -> (Option<String>, String) {
        let p = TablePattern::parse(pat).unwrap_or_else(|e| panic!("{pat}: {e}"));
        (p.schema_regex().map(str::to_owned), p.name_regex().to_owned())
    }

    fn check(pat: &str, schema: Option<&str>, name: &str) {
        assert_eq!(regexes(pat), (schema.map(str::to_owned), name.to_owned()), "pattern {pat}");
    }

    #[test]
    fn documented_examples() {
        check("public.*", Some("^(public)$"), "^(.*)$");
        check("\"MyTable\"", None, "^(MyTable)$");
        check("sales.order_*", Some("^(sales)$"), "^(order_.*)$");
        check("\"weird.name\"", None, "^(weird\\.name)$");
        check("*.t?", None, "^(t.)$");
    }

    #[test]
    fn unqualified_matches_every_schema() {
        check("orders", None, "^(orders)$");
        check("*", None, "^(.*)$");
    }

    #[test]
    fn unquoted_letters_fold_to_lower_case() {
        check("Sales.Orders", Some("^(sales)$"), "^(orders)$");
        check("ABC_def", None, "^(abc_def)$");
        // Only ASCII folds, as PostgreSQL folds identifiers in UTF-8.
        check("ÄBC", None, "^(Äbc)$");
    }

    #[test]
    fn quotes_preserve_case_and_make_specials_literal() {
        check("\"Sales\".\"Orders\"", Some("^(Sales)$"), "^(Orders)$");
        check("\"a*b?c\"", None, "^(a\\*b\\?c)$");
        check("\"x|y+(z)[0]{1}^\\\"", None, "^(x\\|y\\+\\(z\\)\\[0\\]\\{1\\}\\^\\\\)$");
    }

    #[test]
    fn doubled_quote_inside_quotes_is_a_literal_quote() {
        check("\"say \"\"hi\"\"\"", None, "^(say \"hi\")$");
        check("\"\"\"\"", None, "^(\")$");
    }

    #[test]
    fn partially_quoted_names() {
        check("\"My\"Table*", None, "^(Mytable.*)$");
        check("s.\"Order\"_*", Some("^(s)$"), "^(Order_.*)$");
        check("\"a.b\".c", Some("^(a\\.b)$"), "^(c)$");
    }

    #[test]
    fn dollar_is_always_literal() {
        check("t$1", None, "^(t\\$1)$");
        check("\"t$\"", None, "^(t\\$)$");
    }

    #[test]
    fn regex_specials_outside_quotes_pass_through() {
        check("order_[0-9]+", None, "^(order_[0-9]+)$");
        check("(a|b)_log", None, "^((a|b)_log)$");
        check("x\\d", None, "^(x\\d)$");
        check("s.t{2}", Some("^(s)$"), "^(t{2})$");
    }

    #[test]
    fn star_schema_is_any_schema_but_partial_star_is_not() {
        check("*.orders", None, "^(orders)$");
        check("s*.orders", Some("^(s.*)$"), "^(orders)$");
        check("\"*\".orders", Some("^(\\*)$"), "^(orders)$");
    }

    #[test]
    fn errors() {
        assert_eq!(TablePattern::parse(""), Err(PatternError::Empty));
        assert_eq!(TablePattern::parse("  "), Err(PatternError::Empty));
        let e = TablePattern::parse("db.sales.orders").unwrap_err();
        assert!(matches!(e, PatternError::TooManyDots { .. }));
        assert!(e.to_string().contains("too many dotted names"), "{e}");
        assert!(e.to_string().contains("db.sales.orders"), "{e}");
        for p in ["sales.", ".orders", ".", "\"\"", "s.\"\""] {
            assert!(matches!(TablePattern::parse(p), Err(PatternError::EmptyPart { .. })), "{p}");
        }
        let e = TablePattern::parse("\"open").unwrap_err();
        assert!(matches!(e, PatternError::UnterminatedQuote { .. }));
        assert!(e.to_string().contains("unterminated double quote"));
        // A quoted dot never counts as a separator.
        assert!(TablePattern::parse("\"a.b.c\"").is_ok());
    }

    #[test]
    fn display_and_from_str_keep_the_original() {
        let p: TablePattern = "Sales.*".parse().unwrap();
        assert_eq!(p.to_string(), "Sales.*");
        assert_eq!(p.as_str(), "Sales.*");
    }

    #[test]
    fn quote_ident_always_quotes() {
        assert_eq!(quote_ident("orders"), "\"orders\"");
        assert_eq!(quote_ident("Order"), "\"Order\"");
        assert_eq!(quote_ident(""), "\"\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("\"\""), "\"\"\"\"\"\"");
        assert_eq!(quote_ident("weird.name"), "\"weird.name\"");
    }

    #[test]
    fn quote_literal_forms() {
        assert_eq!(quote_literal(""), "''");
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_literal("it's a\\b"), "E'it''s a\\\\b'");
        assert_eq!(quote_literal("^(a\\.b)$"), "E'^(a\\\\.b)$'");
    }
}
