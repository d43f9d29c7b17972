//! Pluggable template functions: a [`FuncMap`] maps names to typed
//! functions. Prometheus and Alertmanager each build one; the rules layer
//! adds `query` with its own callback; tests add their own.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::value::{Param, Value};

/// A function's own failure; the executor reports it as Go does:
/// `error calling NAME: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FuncError(pub String);

impl FuncError {
    pub fn new(msg: impl Into<String>) -> Self {
        FuncError(msg.into())
    }
}

type Body = dyn Fn(&[Value]) -> Result<Value, FuncError> + Send + Sync;

#[derive(Clone)]
pub(crate) enum Kind {
    Native(Arc<Body>),
    /// Prometheus's `tmpl`: executes a named template of the running set,
    /// which only the executor can do.
    ExecTemplate,
}

/// A template function: declared parameter types (checked like Go checks
/// them, so errors match) and a body.
#[derive(Clone)]
pub struct Function {
    pub(crate) params: Vec<Param>,
    pub(crate) variadic: Option<Param>,
    pub(crate) kind: Kind,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("params", &self.params)
            .field("variadic", &self.variadic)
            .finish()
    }
}

impl Function {
    /// A function with fixed parameters.
    pub fn new(
        params: &[Param],
        body: impl Fn(&[Value]) -> Result<Value, FuncError> + Send + Sync + 'static,
    ) -> Function {
        Function {
            params: params.to_vec(),
            variadic: None,
            kind: Kind::Native(Arc::new(body)),
        }
    }

    /// A function whose last parameter repeats (`...T` in Go).
    pub fn variadic(
        params: &[Param],
        rest: Param,
        body: impl Fn(&[Value]) -> Result<Value, FuncError> + Send + Sync + 'static,
    ) -> Function {
        Function {
            params: params.to_vec(),
            variadic: Some(rest),
            kind: Kind::Native(Arc::new(body)),
        }
    }

    /// Prometheus's `tmpl NAME DATA`: runs a named template and returns its
    /// output.
    pub fn exec_template() -> Function {
        Function {
            params: vec![Param::String, Param::Any],
            variadic: None,
            kind: Kind::ExecTemplate,
        }
    }
}

/// Names to functions. Parsing consults only the names (an unknown
/// function is a parse error, as in Go); execution calls the bodies, so a
/// template parsed once can run with per-evaluation functions such as a
/// `query` bound to the evaluation timestamp.
#[derive(Clone, Default, Debug)]
pub struct FuncMap {
    funcs: HashMap<String, Function>,
}

impl FuncMap {
    pub fn new() -> Self {
        FuncMap::default()
    }

    /// Adds or replaces a function.
    pub fn insert(&mut self, name: impl Into<String>, f: Function) -> &mut Self {
        self.funcs.insert(name.into(), f);
        self
    }

    /// Adds every function of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: &FuncMap) -> &mut Self {
        for (k, v) in &other.funcs {
            self.funcs.insert(k.clone(), v.clone());
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&Function> {
        self.funcs.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }

    /// The function names, in no particular order.
    pub fn iter_names(&self) -> impl Iterator<Item = &str> {
        self.funcs.keys().map(String::as_str)
    }

    /// Calls a native function directly (used by tests and by callers that
    /// want a helper's behaviour outside a template).
    pub fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        match &self.funcs.get(name)?.kind {
            Kind::Native(f) => Some(f(args)),
            Kind::ExecTemplate => None,
        }
    }
}
