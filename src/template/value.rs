//! The dynamic values templates execute over, modelled on what Go's
//! `reflect` shows `text/template`: every value knows its Go type name
//! (error messages and `%T` quote it), its kind (comparisons, truth, `len`,
//! `index`, `range` dispatch on it), and typed containers know the methods
//! Alertmanager's data offers (`.Alerts.Firing`, `.CommonLabels.SortedPairs`).
//!
//! Go distinguishes "no value at all" (a missing map key: the invalid
//! `reflect.Value`, printed `<no value>`) from "a nil interface held in a
//! container" (a JSON `null`: printed `<nil>` inside a list, an error when a
//! field is read through it). [`Value::Missing`] and [`Value::Nil`] keep that
//! distinction so outputs and errors match Go's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::FuncError;
use super::gotime::GoTime;

/// A template value.
#[derive(Clone, Debug)]
pub enum Value {
    /// No value: a missing map key, a field of missing data, no data at all.
    Missing,
    /// A nil interface stored in a container (JSON `null`).
    Nil,
    Bool(bool),
    /// Go's `int` (64-bit).
    Int(i64),
    /// Go's `float64`.
    Float(f64),
    Str(Arc<str>),
    List(Arc<List>),
    Map(Arc<Map>),
    Struct(Arc<Struct>),
    /// Go's `time.Time`.
    Time(GoTime),
    /// Go's `time.Duration` in nanoseconds.
    Duration(i64),
}

/// A slice; its type says what methods it has (`template.Alerts` has
/// `Firing`) and what Go calls it in error messages.
#[derive(Debug)]
pub struct List {
    pub ty: &'static GoType,
    pub items: Vec<Value>,
}

/// A map with string keys, iterated (and printed) in sorted key order as Go
/// does.
#[derive(Debug)]
pub struct Map {
    pub ty: &'static GoType,
    pub entries: BTreeMap<String, Value>,
}

/// A struct (or pointer to struct, when the type says so): named fields in
/// declaration order.
#[derive(Debug)]
pub struct Struct {
    pub ty: &'static GoType,
    pub fields: Vec<(&'static str, Value)>,
}

/// What Go's type system says about a container value.
pub struct GoType {
    /// The name Go prints for the type, e.g. `map[string]interface {}`.
    pub name: &'static str,
    /// Methods reachable with field syntax; Go resolves them before fields
    /// and map keys.
    pub methods: &'static [Method],
    /// The type's `String()` method, used by `{{.}}`, `%v` and `%s`.
    pub stringer: Option<fn(&Value) -> String>,
    /// The zero value of a map's element type: what a missing key yields
    /// with `missingkey=zero` and from `index`.
    pub elem_zero: fn() -> Value,
    /// For structs: the type is a pointer to the struct (`*template.sample`),
    /// which changes printing (`&{...}`) but not field access.
    pub pointer: bool,
    /// For structs: names `toJson` uses for the fields, in field order
    /// (empty: the Go field names).
    pub json_names: &'static [&'static str],
    /// Elements (or map values) are held as `interface{}`. Go names that
    /// static type, not the dynamic one, in "can't evaluate field" errors
    /// about values read out of such containers.
    pub elem_iface: bool,
}

impl fmt::Debug for GoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A method callable from a template as `.Receiver.Name args...`.
pub struct Method {
    pub name: &'static str,
    pub params: &'static [Param],
    pub variadic: Option<Param>,
    pub call: fn(&Value, &[Value]) -> Result<Value, FuncError>,
}

/// The declared type of a function or method parameter. The executor checks
/// arguments against it the way Go's reflection-based call does, so a
/// template passing a number where a string is wanted fails with Go's
/// message instead of being coerced.
#[derive(Clone, Copy, Debug)]
pub enum Param {
    /// `interface{}`: anything, including nil.
    Any,
    String,
    Float,
    Int,
    Bool,
    Time,
    Duration,
    /// A named container type such as `[]string` or `template.queryResult`.
    Typed(&'static GoType),
}

impl Param {
    /// The Go spelling of the parameter type, for error messages.
    pub fn go_name(&self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::String => "string",
            Param::Float => "float64",
            Param::Int => "int",
            Param::Bool => "bool",
            Param::Time => "time.Time",
            Param::Duration => "time.Duration",
            Param::Typed(t) => t.name,
        }
    }
}

fn zero_nil() -> Value {
    Value::Nil
}

fn zero_string() -> Value {
    Value::from("")
}

fn zero_missing() -> Value {
    Value::Missing
}

/// `[]interface {}`: lists decoded from JSON or built by templates.
pub static ANY_LIST: GoType = GoType {
    name: "[]interface {}",
    methods: &[],
    stringer: None,
    elem_zero: zero_nil,
    pointer: false,
    json_names: &[],
    elem_iface: true,
};

/// `[]string`.
pub static STRING_LIST: GoType = GoType {
    name: "[]string",
    methods: &[],
    stringer: None,
    elem_zero: zero_string,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// `map[string]interface {}`: objects decoded from JSON, `args` results.
pub static ANY_MAP: GoType = GoType {
    name: "map[string]interface {}",
    methods: &[],
    stringer: None,
    elem_zero: zero_nil,
    pointer: false,
    json_names: &[],
    elem_iface: true,
};

/// `map[string]string`: label sets. A missing key reads as `""` under
/// `missingkey=zero`, which Prometheus and Alertmanager both set.
pub static STRING_MAP: GoType = GoType {
    name: "map[string]string",
    methods: &[],
    stringer: None,
    elem_zero: zero_string,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// A struct type with no methods, for callers exposing their own records.
pub static RECORD: GoType = GoType {
    name: "struct",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// Go's kinds as `eq`/`lt` see them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BasicKind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
}

impl Value {
    /// A `[]interface {}`.
    pub fn list(items: Vec<Value>) -> Value {
        Value::typed_list(&ANY_LIST, items)
    }

    /// A `[]string`.
    pub fn strings<S: Into<Arc<str>>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::typed_list(
            &STRING_LIST,
            items.into_iter().map(|s| Value::Str(s.into())).collect(),
        )
    }

    pub fn typed_list(ty: &'static GoType, items: Vec<Value>) -> Value {
        Value::List(Arc::new(List { ty, items }))
    }

    /// A `map[string]interface {}`.
    pub fn map(entries: BTreeMap<String, Value>) -> Value {
        Value::typed_map(&ANY_MAP, entries)
    }

    /// A `map[string]string`, e.g. a label set.
    pub fn string_map<K: Into<String>, V: Into<Arc<str>>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::typed_map(
            &STRING_MAP,
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), Value::Str(v.into())))
                .collect(),
        )
    }

    pub fn typed_map(ty: &'static GoType, entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Arc::new(Map { ty, entries }))
    }

    /// A struct: how callers expose records (`{{ .Labels.job }}`).
    pub fn record(ty: &'static GoType, fields: Vec<(&'static str, Value)>) -> Value {
        Value::Struct(Arc::new(Struct { ty, fields }))
    }

    /// Converts decoded JSON the way Go's `encoding/json` fills an
    /// `interface{}`: every number becomes a `float64`.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::from(s.as_str()),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The Go type name (`float64`, `map[string]string`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing => "<nil>",
            Value::Nil => "interface {}",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(l) => l.ty.name,
            Value::Map(m) => m.ty.name,
            Value::Struct(s) => s.ty.name,
            Value::Time(_) => "time.Time",
            Value::Duration(_) => "time.Duration",
        }
    }

    /// The string content, for string values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is Go's nil (either flavour).
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Missing | Value::Nil)
    }

    /// Go's truth: the zero value of a type is false; structs are true.
    pub fn truth(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Struct(_) | Value::Time(_) => true,
            Value::Duration(d) => *d != 0,
        }
    }

    pub(crate) fn basic_kind(&self) -> BasicKind {
        match self {
            Value::Bool(_) => BasicKind::Bool,
            Value::Int(_) | Value::Duration(_) => BasicKind::Int,
            Value::Float(_) => BasicKind::Float,
            Value::Str(_) => BasicKind::String,
            _ => BasicKind::Invalid,
        }
    }

    pub(crate) fn int_value(&self) -> i64 {
        match self {
            Value::Int(i) | Value::Duration(i) => *i,
            _ => 0,
        }
    }

    /// The methods of the value's type.
    pub(crate) fn methods(&self) -> &'static [Method] {
        match self {
            Value::List(l) => l.ty.methods,
            Value::Map(m) => m.ty.methods,
            Value::Struct(s) => s.ty.methods,
            Value::Time(_) => super::gotime::TIME_METHODS,
            Value::Duration(_) => super::gotime::DURATION_METHODS,
            _ => &[],
        }
    }

    /// The value's `String()` method, when its type has one.
    pub(crate) fn stringer(&self) -> Option<String> {
        match self {
            Value::List(l) => l.ty.stringer.map(|f| f(self)),
            Value::Map(m) => m.ty.stringer.map(|f| f(self)),
            Value::Struct(s) => s.ty.stringer.map(|f| f(self)),
            Value::Time(t) => Some(t.to_string()),
            Value::Duration(d) => Some(super::gotime::format_duration(*d)),
            _ => None,
        }
    }

    /// Whether the value is of the parameter's type (Go's assignability,
    /// for the types templates meet).
    pub(crate) fn assignable_to(&self, p: Param) -> bool {
        match (p, self) {
            (Param::Any, _) => true,
            (Param::String, Value::Str(_))
            | (Param::Float, Value::Float(_))
            | (Param::Int, Value::Int(_))
            | (Param::Bool, Value::Bool(_))
            | (Param::Time, Value::Time(_))
            | (Param::Duration, Value::Duration(_)) => true,
            (Param::Typed(t), Value::List(l)) => l.ty.name == t.name,
            (Param::Typed(t), Value::Map(m)) => m.ty.name == t.name,
            (Param::Typed(t), Value::Struct(s)) => s.ty.name == t.name,
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Arc::from(s))
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl Struct {
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_become_floats_like_go() {
        let v = Value::from_json(&serde_json::json!({"a": 1, "b": [true, null]}));
        let Value::Map(m) = v else { panic!() };
        assert!(matches!(m.entries["a"], Value::Float(f) if f == 1.0));
        let Value::List(l) = &m.entries["b"] else {
            panic!()
        };
        assert!(matches!(l.items[1], Value::Nil));
    }

    #[test]
    fn truth_follows_go_zero_values() {
        assert!(!Value::from("").truth());
        assert!(Value::from("x").truth());
        assert!(!Value::Float(0.0).truth());
        assert!(Value::Float(f64::NAN).truth());
        assert!(!Value::list(vec![]).truth());
        assert!(!Value::Missing.truth());
    }
}
