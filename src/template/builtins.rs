//! Go's builtin template functions: `and or not len index slice eq ne lt
//! le gt ge print printf println html js urlquery call`, with Go's
//! comparison rules and error texts (`incompatible types for comparison`,
//! `index out of range: 5`).

use super::FuncError;
use super::gofmt::{display, sprint, sprintf, sprintln};
use super::value::{BasicKind, Param, Value};

pub(crate) struct Builtin {
    pub name: &'static str,
    pub params: &'static [Param],
    pub variadic: Option<Param>,
    pub call: fn(&[Value]) -> Result<Value, FuncError>,
}

const ANY: Param = Param::Any;

static BUILTINS: &[Builtin] = &[
    // and/or are evaluated lazily by the executor; the body is unused.
    Builtin {
        name: "and",
        params: &[ANY],
        variadic: Some(ANY),
        call: |_| Ok(Value::Missing),
    },
    Builtin {
        name: "or",
        params: &[ANY],
        variadic: Some(ANY),
        call: |_| Ok(Value::Missing),
    },
    Builtin {
        name: "not",
        params: &[ANY],
        variadic: None,
        call: |a| Ok(Value::Bool(!a[0].truth())),
    },
    Builtin {
        name: "len",
        params: &[ANY],
        variadic: None,
        call: length,
    },
    Builtin {
        name: "index",
        params: &[ANY],
        variadic: Some(ANY),
        call: index,
    },
    Builtin {
        name: "slice",
        params: &[ANY],
        variadic: Some(ANY),
        call: slice,
    },
    Builtin {
        name: "eq",
        params: &[ANY],
        variadic: Some(ANY),
        call: |a| eq(&a[0], &a[1..]).map(Value::Bool),
    },
    Builtin {
        name: "ne",
        params: &[ANY, ANY],
        variadic: None,
        call: |a| eq(&a[0], &a[1..2]).map(|b| Value::Bool(!b)),
    },
    Builtin {
        name: "lt",
        params: &[ANY, ANY],
        variadic: None,
        call: |a| lt(&a[0], &a[1]).map(Value::Bool),
    },
    Builtin {
        name: "le",
        params: &[ANY, ANY],
        variadic: None,
        call: |a| le(&a[0], &a[1]).map(Value::Bool),
    },
    Builtin {
        name: "gt",
        params: &[ANY, ANY],
        variadic: None,
        call: |a| le(&a[0], &a[1]).map(|b| Value::Bool(!b)),
    },
    Builtin {
        name: "ge",
        params: &[ANY, ANY],
        variadic: None,
        call: |a| lt(&a[0], &a[1]).map(|b| Value::Bool(!b)),
    },
    Builtin {
        name: "print",
        params: &[],
        variadic: Some(ANY),
        call: |a| Ok(Value::from(sprint(a))),
    },
    Builtin {
        name: "printf",
        params: &[Param::String],
        variadic: Some(ANY),
        call: |a| Ok(Value::from(sprintf(a[0].as_str().unwrap_or(""), &a[1..]))),
    },
    Builtin {
        name: "println",
        params: &[],
        variadic: Some(ANY),
        call: |a| Ok(Value::from(sprintln(a))),
    },
    Builtin {
        name: "html",
        params: &[],
        variadic: Some(ANY),
        call: |a| Ok(Value::from(html_escape(&eval_args(a)))),
    },
    Builtin {
        name: "js",
        params: &[],
        variadic: Some(ANY),
        call: |a| Ok(Value::from(js_escape(&eval_args(a)))),
    },
    Builtin {
        name: "urlquery",
        params: &[],
        variadic: Some(ANY),
        call: |a| Ok(Value::from(query_escape(&eval_args(a)))),
    },
    Builtin {
        name: "call",
        params: &[ANY],
        variadic: Some(ANY),
        call: |a| {
            if a[0].is_nil() {
                return Err(FuncError::new("call of nil"));
            }
            Err(FuncError(format!(
                "non-function of type {}",
                a[0].type_name()
            )))
        },
    },
];

pub(crate) fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

pub(crate) fn is_builtin(name: &str) -> bool {
    lookup(name).is_some()
}

/// Go's `evalArgs` for html/js/urlquery: one string argument as is,
/// anything else printed with `fmt.Sprint` (nil as `<no value>`).
fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| {
            if a.is_nil() {
                Value::from("<no value>")
            } else {
                a.clone()
            }
        })
        .collect();
    sprint(&printable)
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c => {
                if super::gofmt::is_print(c) {
                    out.push(c);
                } else {
                    out.push_str(&format!("\\u{:04X}", c as u32));
                }
            }
        }
    }
    out
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn length(a: &[Value]) -> Result<Value, FuncError> {
    match &a[0] {
        Value::Nil => Err(FuncError::new("len of nil pointer")),
        Value::Missing => Err(FuncError::new(
            "reflect: call of reflect.Value.Type on zero Value",
        )),
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        Value::List(l) => Ok(Value::Int(l.items.len() as i64)),
        Value::Map(m) => Ok(Value::Int(m.entries.len() as i64)),
        v => Err(FuncError(format!("len of type {}", v.type_name()))),
    }
}

fn index_arg(index: &Value, cap: usize) -> Result<usize, FuncError> {
    let x = match index {
        Value::Int(i) | Value::Duration(i) => *i,
        Value::Missing | Value::Nil => {
            return Err(FuncError::new("cannot index slice/array with nil"));
        }
        v => {
            return Err(FuncError(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            )));
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(FuncError(format!("index out of range: {x}")));
    }
    Ok(x as usize)
}

fn index(a: &[Value]) -> Result<Value, FuncError> {
    let mut item = a[0].clone();
    if item.is_nil() {
        return Err(FuncError::new("index of untyped nil"));
    }
    for idx in &a[1..] {
        if item.is_nil() {
            return Err(FuncError::new("index of nil pointer"));
        }
        item = match &item {
            Value::List(l) => {
                let x = index_arg(idx, l.items.len())?;
                match l.items.get(x) {
                    Some(v) => v.clone(),
                    // Go lets an index equal to the length through to
                    // reflect, which panics with this text.
                    None => return Err(FuncError::new("reflect: slice index out of range")),
                }
            }
            Value::Str(s) => {
                let x = index_arg(idx, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Int(i64::from(*b)),
                    None => return Err(FuncError::new("reflect: string index out of range")),
                }
            }
            Value::Map(m) => {
                let key = match idx {
                    Value::Str(k) => k.to_string(),
                    Value::Missing | Value::Nil => {
                        return Err(FuncError::new("value is nil; should be of type string"));
                    }
                    v => {
                        return Err(FuncError(format!(
                            "value has type {}; should be string",
                            v.type_name()
                        )));
                    }
                };
                match m.entries.get(&key) {
                    Some(v) => v.clone(),
                    None => (m.ty.elem_zero)(),
                }
            }
            v => {
                return Err(FuncError(format!(
                    "can't index item of type {}",
                    v.type_name()
                )));
            }
        };
    }
    Ok(item)
}

fn slice(a: &[Value]) -> Result<Value, FuncError> {
    let item = &a[0];
    if item.is_nil() {
        return Err(FuncError::new("slice of untyped nil"));
    }
    let idxs = &a[1..];
    if idxs.len() > 3 {
        return Err(FuncError(format!("too many slice indexes: {}", idxs.len())));
    }
    let len = match item {
        Value::Str(s) => {
            if idxs.len() == 3 {
                return Err(FuncError::new("cannot 3-index slice a string"));
            }
            s.len()
        }
        Value::List(l) => l.items.len(),
        v => {
            return Err(FuncError(format!(
                "can't slice item of type {}",
                v.type_name()
            )));
        }
    };
    let mut idx = [0usize, len, len];
    for (i, v) in idxs.iter().enumerate() {
        idx[i] = index_arg(v, len)?;
    }
    if idx[0] > idx[1] {
        return Err(FuncError(format!(
            "invalid slice index: {} > {}",
            idx[0], idx[1]
        )));
    }
    if idxs.len() == 3 && idx[1] > idx[2] {
        return Err(FuncError(format!(
            "invalid slice index: {} > {}",
            idx[1], idx[2]
        )));
    }
    Ok(match item {
        Value::Str(s) => {
            Value::from(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Value::List(l) => Value::typed_list(l.ty, l.items[idx[0]..idx[1]].to_vec()),
        _ => Value::Missing,
    })
}

/// Go's `eq`: true if `a` equals any of `others`; values of different
/// basic kinds are an error unless one is nil.
pub(crate) fn eq(a: &Value, others: &[Value]) -> Result<bool, FuncError> {
    if others.is_empty() {
        return Err(FuncError::new("missing argument for comparison"));
    }
    let k1 = a.basic_kind();
    for b in others {
        let k2 = b.basic_kind();
        let truth = if k1 != k2 {
            if !a.is_nil() && !b.is_nil() {
                return Err(FuncError::new("incompatible types for comparison"));
            }
            false
        } else {
            match k1 {
                BasicKind::Bool => matches!((a, b), (Value::Bool(x), Value::Bool(y)) if x == y),
                BasicKind::Int => a.int_value() == b.int_value(),
                BasicKind::Float => matches!((a, b), (Value::Float(x), Value::Float(y)) if x == y),
                BasicKind::String => a.as_str() == b.as_str(),
                BasicKind::Invalid => compare_other(a, b)?,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `eq` on values that are not bools, numbers or strings: nils compare
/// equal to each other; maps and slices are not comparable.
fn compare_other(a: &Value, b: &Value) -> Result<bool, FuncError> {
    if a.is_nil() || b.is_nil() {
        return Ok(a.is_nil() == b.is_nil());
    }
    let kind = |v: &Value| match v {
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Struct(_) => "struct",
        Value::Time(_) => "time",
        _ => "other",
    };
    if kind(a) != kind(b) {
        return Err(FuncError(format!(
            "non-comparable types {}: {}, {}: {}",
            sprintf("%s", std::slice::from_ref(a)),
            a.type_name(),
            b.type_name(),
            display(b)
        )));
    }
    match (a, b) {
        (Value::Time(x), Value::Time(y)) => Ok(x.unix_nanos() == y.unix_nanos()),
        (Value::Struct(x), Value::Struct(y)) if x.ty.pointer => Ok(std::sync::Arc::ptr_eq(x, y)),
        _ => Err(FuncError(format!(
            "non-comparable type {}: {}",
            sprintf("%s", std::slice::from_ref(b)),
            b.type_name()
        ))),
    }
}

fn lt(a: &Value, b: &Value) -> Result<bool, FuncError> {
    let k1 = a.basic_kind();
    let k2 = b.basic_kind();
    if k1 == BasicKind::Invalid || k2 == BasicKind::Invalid {
        return Err(FuncError::new("invalid type for comparison"));
    }
    if k1 != k2 {
        return Err(FuncError::new("incompatible types for comparison"));
    }
    Ok(match (k1, a, b) {
        (BasicKind::Bool, _, _) => return Err(FuncError::new("invalid type for comparison")),
        (BasicKind::Int, _, _) => a.int_value() < b.int_value(),
        (BasicKind::Float, Value::Float(x), Value::Float(y)) => x < y,
        (BasicKind::String, _, _) => a.as_str() < b.as_str(),
        _ => false,
    })
}

fn le(a: &Value, b: &Value) -> Result<bool, FuncError> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(a, std::slice::from_ref(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapers_match_go() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            js_escape("a'b\"c<d>=\n"),
            "a\\'b\\\"c\\u003Cd\\u003E\\u003D\\u000A"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn comparisons_follow_go_kinds() {
        assert!(eq(&Value::Int(1), &[Value::Int(2), Value::Int(1)]).unwrap());
        assert!(eq(&Value::Float(1.0), &[Value::Int(1)]).is_err());
        assert!(!eq(&Value::Missing, &[Value::Int(1)]).unwrap());
        assert!(lt(&Value::from("a"), &Value::from("b")).unwrap());
        assert_eq!(
            lt(&Value::Bool(true), &Value::Bool(false)).unwrap_err().0,
            "invalid type for comparison"
        );
    }
}
