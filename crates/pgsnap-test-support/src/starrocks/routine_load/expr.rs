//! The `COLUMNS` expression language of the double's Routine Load: parsing, static typing and
//! evaluation of exactly the subset pgsnap renders (see the module doc of
//! [`routine_load`](super)).
//!
//! Types: every column reference is a source slot, i.e. VARCHAR (sourced: arguments of
//! COLUMNS expressions are VARCHAR, nullable); string literals are VARCHAR; integer literals
//! BIGINT; `parse_json`/`json_query` give JSON; `=`, `IS [NOT] NULL`, `AND`, `OR` give
//! BOOLEAN. Mixed types where StarRocks would insert an implicit cast whose result is
//! unconfirmed (`varchar = int`, `coalesce(json, varchar)`, `concat` of JSON, ...) are refused
//! when the statement is created.

use serde_json::Value as Json;

use super::super::ddl::{Cursor, SqlError, Tok};
use super::super::value;
use super::not_modelled;

/// A JSON path of `json_query`: `$`, `$.a.b`, `$[0]`, `$.a[1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathStep {
    /// `.key`
    Key(String),
    /// `[n]`
    Index(usize),
}

/// Parses a `json_query` path; `None` for anything outside `$`, `.key`, `[n]`.
pub(crate) fn parse_query_path(path: &str) -> Option<Vec<PathStep>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return None;
            }
            steps.push(PathStep::Key(key.to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let n = &r[..end];
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            steps.push(PathStep::Index(n.parse().ok()?));
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// A function of the modelled subset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Func {
    /// `coalesce(a, ...)`: the first non-NULL argument.
    Coalesce,
    /// `if(cond, a, b)`: a NULL condition is false.
    If,
    /// `concat(a, ...)`: NULL if any argument is NULL.
    Concat,
    /// `parse_json(varchar)`: `parse_json_or_string`.
    ParseJson,
    /// `json_query(json, 'path')`.
    JsonQuery(Vec<PathStep>),
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A column reference (a source slot), by name as written.
    Col(String),
    /// A resolved source slot (after binding to a table).
    Slot(usize),
    /// A string literal.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// `NULL`.
    Null,
    /// A function call.
    Call(Func, Vec<Expr>),
    /// `a = b`.
    Eq(Box<Expr>, Box<Expr>),
    /// `a IS NULL` (`false`) / `a IS NOT NULL` (`true`).
    IsNull(Box<Expr>, bool),
    /// `a AND b`.
    And(Box<Expr>, Box<Expr>),
    /// `a OR b`.
    Or(Box<Expr>, Box<Expr>),
}

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// Only `NULL`.
    Null,
    /// VARCHAR.
    Varchar,
    /// BIGINT.
    Int,
    /// BOOLEAN.
    Bool,
    /// JSON.
    Json,
}

impl Ty {
    /// The SQL type's name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Ty::Null => "NULL",
            Ty::Varchar => "VARCHAR",
            Ty::Int => "BIGINT",
            Ty::Bool => "BOOLEAN",
            Ty::Json => "JSON",
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// SQL NULL.
    Null,
    /// VARCHAR.
    Str(String),
    /// BIGINT.
    Int(i64),
    /// BOOLEAN.
    Bool(bool),
    /// JSON (JSON `null` is `Json::Null`, distinct from SQL NULL).
    Json(Json),
}

/// Parses one expression at the cursor (up to a `,` or `)` that ends it).
pub(crate) fn parse_expr(c: &mut Cursor<'_>) -> Result<Expr, SqlError> {
    parse_or(c)
}

fn parse_or(c: &mut Cursor<'_>) -> Result<Expr, SqlError> {
    let mut left = parse_and(c)?;
    while c.eat_kw("OR") {
        left = Expr::Or(Box::new(left), Box::new(parse_and(c)?));
    }
    Ok(left)
}

fn parse_and(c: &mut Cursor<'_>) -> Result<Expr, SqlError> {
    let mut left = parse_cmp(c)?;
    while c.eat_kw("AND") {
        left = Expr::And(Box::new(left), Box::new(parse_cmp(c)?));
    }
    Ok(left)
}

fn parse_cmp(c: &mut Cursor<'_>) -> Result<Expr, SqlError> {
    let mut left = parse_primary(c)?;
    loop {
        if c.eat_punct('=') {
            left = Expr::Eq(Box::new(left), Box::new(parse_primary(c)?));
        } else if c.eat_kw("IS") {
            let not = c.eat_kw("NOT");
            if !c.eat_kw("NULL") {
                return Err(not_modelled(format!(
                    "IS {}{}",
                    if not { "NOT " } else { "" },
                    c.describe_next()
                )));
            }
            left = Expr::IsNull(Box::new(left), not);
        } else {
            check_no_operator(c)?;
            return Ok(left);
        }
    }
}

/// Refuses, by name, an operator the double does not model.
fn check_no_operator(c: &Cursor<'_>) -> Result<(), SqlError> {
    match c.peek() {
        Some(Tok::Punct(p)) if "<>!+-*/%|&^~:".contains(*p) => {
            let mut op = p.to_string();
            if let Some(Tok::Punct(q)) = c.peek_at(1)
                && "<>=|&".contains(*q)
            {
                op.push(*q);
            }
            Err(not_modelled(format!("operator {op}")))
        }
        Some(Tok::Word(w))
            if ["NOT", "LIKE", "IN", "BETWEEN", "REGEXP", "RLIKE", "DIV", "MOD", "XOR", "CASE"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)) =>
        {
            Err(not_modelled(format!("operator {}", w.to_ascii_uppercase())))
        }
        _ => Ok(()),
    }
}

fn parse_primary(c: &mut Cursor<'_>) -> Result<Expr, SqlError> {
    let tok = c.peek().cloned();
    match tok {
        Some(Tok::Punct('(')) => {
            c.pos += 1;
            let e = parse_or(c)?;
            c.expect_punct(')')?;
            Ok(e)
        }
        Some(Tok::Quoted(name)) => {
            c.pos += 1;
            Ok(Expr::Col(name))
        }
        Some(Tok::Str(s)) => {
            c.pos += 1;
            Ok(Expr::Str(s))
        }
        Some(Tok::Num(n)) => {
            c.pos += 1;
            if n.contains('.') {
                return Err(not_modelled(format!("the decimal literal {n}")));
            }
            n.parse::<i64>().map(Expr::Int).map_err(|_| not_modelled(format!("the literal {n}")))
        }
        Some(Tok::Word(w)) => {
            c.pos += 1;
            if c.is_punct('(') {
                c.pos += 1;
                return parse_call(c, &w);
            }
            if w.eq_ignore_ascii_case("NULL") {
                return Ok(Expr::Null);
            }
            if ["TRUE", "FALSE", "NOT", "CASE", "INTERVAL"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
            {
                return Err(not_modelled(format!(
                    "{} in a COLUMNS expression",
                    w.to_ascii_uppercase()
                )));
            }
            Ok(Expr::Col(w))
        }
        Some(Tok::Punct(p)) if "-+!~".contains(p) => Err(not_modelled(format!("operator {p}"))),
        _ => Err(SqlError::syntax(format!(
            "Unexpected input {}, expected an expression",
            c.describe_next()
        ))),
    }
}

fn parse_call(c: &mut Cursor<'_>, name: &str) -> Result<Expr, SqlError> {
    let lower = name.to_ascii_lowercase();
    let mut args = Vec::new();
    if !c.eat_punct(')') {
        loop {
            args.push(parse_or(c)?);
            if c.eat_punct(')') {
                break;
            }
            c.expect_punct(',')?;
        }
    }
    let arity = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(SqlError::analysis(format!(
                "No matching function with signature: {lower}({} arguments)",
                args.len()
            )))
        }
    };
    let func = match lower.as_str() {
        "coalesce" => {
            arity(!args.is_empty())?;
            Func::Coalesce
        }
        "if" => {
            arity(args.len() == 3)?;
            Func::If
        }
        "concat" => {
            arity(!args.is_empty())?;
            Func::Concat
        }
        "parse_json" => {
            arity(args.len() == 1)?;
            Func::ParseJson
        }
        "json_query" => {
            arity(args.len() == 2)?;
            let Expr::Str(path) = &args[1] else {
                return Err(not_modelled("json_query with a path that is not a string literal"));
            };
            let steps = parse_query_path(path)
                .ok_or_else(|| not_modelled(format!("the json_query path '{path}'")))?;
            args.truncate(1);
            Func::JsonQuery(steps)
        }
        _ => return Err(not_modelled(format!("function {lower}"))),
    };
    Ok(Expr::Call(func, args))
}

/// The common type of several branches (`coalesce`, `if`): all non-NULL ones must agree.
fn common(tys: &[Ty], what: &str) -> Result<Ty, SqlError> {
    let mut out = Ty::Null;
    for &t in tys {
        if t == Ty::Null {
            continue;
        }
        if out != Ty::Null && out != t {
            return Err(not_modelled(format!(
                "{what} mixing {} and {} (StarRocks' implicit cast)",
                out.name(),
                t.name()
            )));
        }
        out = t;
    }
    Ok(out)
}

impl Expr {
    /// The static type; refuses combinations whose StarRocks result is unconfirmed.
    pub(crate) fn ty(&self) -> Result<Ty, SqlError> {
        Ok(match self {
            Expr::Col(_) | Expr::Slot(_) | Expr::Str(_) => Ty::Varchar,
            Expr::Int(_) => Ty::Int,
            Expr::Null => Ty::Null,
            Expr::Eq(a, b) => {
                let (ta, tb) = (a.ty()?, b.ty()?);
                let ok = ta == Ty::Null
                    || tb == Ty::Null
                    || (ta == tb && matches!(ta, Ty::Varchar | Ty::Int));
                if !ok {
                    return Err(not_modelled(format!(
                        "comparing {} = {} (StarRocks' implicit cast)",
                        ta.name(),
                        tb.name()
                    )));
                }
                Ty::Bool
            }
            Expr::IsNull(a, _) => {
                a.ty()?;
                Ty::Bool
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                for t in [a.ty()?, b.ty()?] {
                    if !matches!(t, Ty::Bool | Ty::Null) {
                        return Err(not_modelled(format!("AND/OR of a {} operand", t.name())));
                    }
                }
                Ty::Bool
            }
            Expr::Call(f, args) => {
                let tys = args.iter().map(Expr::ty).collect::<Result<Vec<_>, _>>()?;
                match f {
                    Func::Coalesce => common(&tys, "coalesce")?,
                    Func::If => {
                        if !matches!(tys[0], Ty::Bool | Ty::Null) {
                            return Err(not_modelled(format!(
                                "if() with a {} condition",
                                tys[0].name()
                            )));
                        }
                        common(&tys[1..], "if()")?
                    }
                    Func::Concat => {
                        if let Some(t) =
                            tys.iter().find(|t| !matches!(t, Ty::Varchar | Ty::Int | Ty::Null))
                        {
                            return Err(not_modelled(format!(
                                "concat() of a {} argument",
                                t.name()
                            )));
                        }
                        Ty::Varchar
                    }
                    Func::ParseJson => {
                        if !matches!(tys[0], Ty::Varchar | Ty::Int | Ty::Null) {
                            return Err(not_modelled(format!(
                                "parse_json() of a {} argument",
                                tys[0].name()
                            )));
                        }
                        Ty::Json
                    }
                    Func::JsonQuery(_) => {
                        if !matches!(tys[0], Ty::Json | Ty::Null) {
                            return Err(not_modelled(format!(
                                "json_query() of a {} argument (StarRocks' implicit cast)",
                                tys[0].name()
                            )));
                        }
                        Ty::Json
                    }
                }
            }
        })
    }

    /// The expression with column names replaced by slots (`resolve` gives the slot of a
    /// name, or why it cannot be used).
    pub(crate) fn resolve(
        &self,
        resolve: &dyn Fn(&str) -> Result<usize, String>,
    ) -> Result<Expr, String> {
        let r = |e: &Expr| e.resolve(resolve).map(Box::new);
        Ok(match self {
            Expr::Col(n) => Expr::Slot(resolve(n)?),
            Expr::Slot(_) | Expr::Str(_) | Expr::Int(_) | Expr::Null => self.clone(),
            Expr::Eq(a, b) => Expr::Eq(r(a)?, r(b)?),
            Expr::And(a, b) => Expr::And(r(a)?, r(b)?),
            Expr::Or(a, b) => Expr::Or(r(a)?, r(b)?),
            Expr::IsNull(a, not) => Expr::IsNull(r(a)?, *not),
            Expr::Call(f, args) => Expr::Call(
                f.clone(),
                args.iter().map(|a| a.resolve(resolve)).collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Evaluates a resolved expression over the source slots (VARCHAR or NULL each).
    pub(crate) fn eval(&self, slots: &[Option<String>]) -> Val {
        match self {
            Expr::Col(_) => Val::Null,
            Expr::Slot(i) => slots.get(*i).cloned().flatten().map_or(Val::Null, Val::Str),
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::Int(i) => Val::Int(*i),
            Expr::Null => Val::Null,
            Expr::Eq(a, b) => match (a.eval(slots), b.eval(slots)) {
                (Val::Null, _) | (_, Val::Null) => Val::Null,
                (x, y) => Val::Bool(x == y),
            },
            Expr::IsNull(a, not) => Val::Bool((a.eval(slots) == Val::Null) != *not),
            Expr::And(a, b) => match (truth(&a.eval(slots)), truth(&b.eval(slots))) {
                (Some(false), _) | (_, Some(false)) => Val::Bool(false),
                (Some(true), Some(true)) => Val::Bool(true),
                _ => Val::Null,
            },
            Expr::Or(a, b) => match (truth(&a.eval(slots)), truth(&b.eval(slots))) {
                (Some(true), _) | (_, Some(true)) => Val::Bool(true),
                (Some(false), Some(false)) => Val::Bool(false),
                _ => Val::Null,
            },
            Expr::Call(f, args) => match f {
                Func::Coalesce => args
                    .iter()
                    .map(|a| a.eval(slots))
                    .find(|v| *v != Val::Null)
                    .unwrap_or(Val::Null),
                Func::If => {
                    if truth(&args[0].eval(slots)) == Some(true) {
                        args[1].eval(slots)
                    } else {
                        args[2].eval(slots)
                    }
                }
                Func::Concat => {
                    let mut out = String::new();
                    for a in args {
                        match a.eval(slots) {
                            Val::Str(s) => out.push_str(&s),
                            Val::Int(i) => out.push_str(&i.to_string()),
                            _ => return Val::Null,
                        }
                    }
                    Val::Str(out)
                }
                Func::ParseJson => {
                    let text = match args[0].eval(slots) {
                        Val::Str(s) => s,
                        Val::Int(i) => i.to_string(),
                        _ => return Val::Null,
                    };
                    value::parse_json_or_string(&text).map_or(Val::Null, Val::Json)
                }
                Func::JsonQuery(steps) => match args[0].eval(slots) {
                    Val::Json(j) => {
                        let mut cur = &j;
                        for step in steps {
                            let next = match (step, cur) {
                                (PathStep::Key(k), Json::Object(m)) => m.get(k),
                                (PathStep::Index(i), Json::Array(a)) => a.get(*i),
                                _ => None,
                            };
                            match next {
                                Some(n) => cur = n,
                                None => return Val::Null,
                            }
                        }
                        Val::Json(cur.clone())
                    }
                    _ => Val::Null,
                },
            },
        }
    }
}

/// A BOOLEAN's truth (`None` for NULL).
fn truth(v: &Val) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(*b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, slots: &[(&str, Option<&str>)]) -> Val {
        let mut c = Cursor::new(text).unwrap();
        let e = parse_expr(&mut c).unwrap();
        assert!(c.at_end(), "{text}");
        e.ty().unwrap();
        let names: Vec<&str> = slots.iter().map(|(n, _)| *n).collect();
        let e = e
            .resolve(&|n| names.iter().position(|m| m.eq_ignore_ascii_case(n)).ok_or(n.to_owned()))
            .unwrap();
        let values: Vec<Option<String>> = slots.iter().map(|(_, v)| v.map(str::to_owned)).collect();
        e.eval(&values)
    }

    #[test]
    fn json_query_of_parse_json() {
        let doc = "json_query(parse_json(concat('{\"v\":', `d`, '}')), '$.v')";
        assert_eq!(eval(doc, &[("d", Some("123"))]), Val::Json(serde_json::json!(123)));
        assert_eq!(eval(doc, &[("d", Some("null"))]), Val::Json(Json::Null));
        assert_eq!(eval(doc, &[("d", Some("abc"))]), Val::Null);
        assert_eq!(eval(doc, &[("d", None)]), Val::Null);
        let is_not_null = format!("{doc} IS NOT NULL");
        assert_eq!(eval(&is_not_null, &[("d", Some("null"))]), Val::Bool(true));
        assert_eq!(
            eval("json_query(parse_json(`d`), '$.a[1]')", &[("d", Some("{\"a\":[1,2]}"))]),
            Val::Json(serde_json::json!(2))
        );
        assert_eq!(eval("json_query(parse_json(`d`), '$[5]')", &[("d", Some("[1]"))]), Val::Null);
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(eval("if(`o` = 'd', 1, 0)", &[("o", None)]), Val::Int(0));
        assert_eq!(eval("if(`o` = 'd', 1, 0)", &[("o", Some("d"))]), Val::Int(1));
        assert_eq!(eval("`a` IS NULL OR `b` = 'x'", &[("a", Some("1")), ("b", None)]), Val::Null);
        assert_eq!(
            eval("`a` IS NULL AND `b` = 'x'", &[("a", Some("1")), ("b", None)]),
            Val::Bool(false)
        );
        assert_eq!(
            eval("coalesce(`a`, `b`)", &[("a", None), ("b", Some("7"))]),
            Val::Str("7".into())
        );
        assert_eq!(eval("concat('a', `b`)", &[("b", None)]), Val::Null);
    }

    #[test]
    fn refusals_name_the_thing() {
        for (text, want) in [
            ("upper(`a`)", "function upper"),
            ("`a` + 1", "operator +"),
            ("`a` LIKE 'x'", "operator LIKE"),
            ("`a` = 1", "comparing VARCHAR = BIGINT"),
            ("json_query(`a`, '$.v')", "json_query() of a VARCHAR"),
            ("json_query(parse_json(`a`), '$..v')", "the json_query path"),
            ("1.5", "decimal literal"),
            ("`a` -> '$.v'", "operator -"),
        ] {
            let mut c = Cursor::new(text).unwrap();
            let err = parse_expr(&mut c).and_then(|e| e.ty().map(|_| e)).unwrap_err();
            assert!(err.message.contains(want), "{text}: {}", err.message);
            assert!(err.message.starts_with("test double:"), "{text}: {}", err.message);
        }
    }
}
