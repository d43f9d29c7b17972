//! Template execution: walks a parsed tree over a [`Value`], calling
//! functions from a [`FuncMap`] and the builtins.
//!
//! The structure follows Go's `text/template/exec.go` closely (which node is
//! "current" when an error happens, when a nil interface becomes "no value",
//! how arguments are checked against parameter types) because the error
//! texts users see in `<error expanding template: ...>` annotations come
//! from exactly those details. Execution is bounded: steps, output bytes and
//! template call depth are limited by [`Limits`].

use super::builtins::{self, Builtin};
use super::funcs::{FuncMap, Kind};
use super::gofmt::{display, quote};
use super::parse::{Arg, Branch, Command, ListNode, Node, Pipe, Tree};
use super::value::{Method, Param, Value};
use super::{Limits, MissingKey, TemplateError, TemplateSet};

/// Non-local exits of a walk: Go implements these with panics.
pub(crate) enum Flow {
    Break,
    Continue,
    Err(TemplateError),
}

type R<T> = Result<T, Flow>;

/// The node errors point at (Go's `state.node`).
#[derive(Clone, Copy)]
enum At<'a> {
    None,
    Node(&'a Node),
    Pipe(&'a Pipe),
    Cmd(&'a Command),
    Arg(&'a Arg),
}

/// A callable: a template function, a builtin, or a method bound to its
/// receiver.
enum Callee<'a> {
    Func(&'a super::funcs::Function),
    Builtin(&'static Builtin),
    Method(&'static Method, Value),
}

impl Callee<'_> {
    fn params(&self) -> (&[Param], Option<Param>) {
        match self {
            Callee::Func(f) => (&f.params, f.variadic),
            Callee::Builtin(b) => (b.params, b.variadic),
            Callee::Method(m, _) => (m.params, m.variadic),
        }
    }
}

pub(crate) struct State<'a> {
    set: &'a TemplateSet,
    funcs: &'a FuncMap,
    missing_key: MissingKey,
    limits: Limits,
    out: String,
    steps: u64,
    tmpl_name: &'a str,
    tree: &'a Tree,
    at: At<'a>,
    /// Variables with a flag: held as `interface{}` (see `dot_iface`).
    vars: Vec<(&'a str, Value, bool)>,
    /// Dot is an element of an `interface{}` container (inside `range` over
    /// JSON-like data): Go then reports its static type, `interface {}`.
    dot_iface: bool,
    depth: usize,
    /// Nested control structures, template calls and pipelines currently
    /// being executed: what the Rust stack holds.
    nest: usize,
}

/// Bound on `State::nest`. Parsing limits nesting per template, but
/// recursion through `{{template}}` multiplies it; this keeps the deepest
/// execution within a 2 MiB thread stack even in debug builds.
const MAX_EXEC_NESTING: usize = 500;

/// Runs template `name` of `set` with `data` as dot and `$`.
pub(crate) fn execute(
    set: &TemplateSet,
    name: &str,
    data: &Value,
    funcs: &FuncMap,
) -> Result<String, TemplateError> {
    let Some(tree) = set.tree(name) else {
        return Err(TemplateError::Exec(format!(
            "template: no template {} associated with template {}",
            quote(name),
            quote(set.root_name())
        )));
    };
    let mut s = State {
        set,
        funcs,
        missing_key: set.missing_key_option(),
        limits: set.limits_option(),
        out: String::new(),
        steps: 0,
        tmpl_name: &tree.name,
        tree,
        at: At::None,
        vars: vec![("$", data.clone(), false)],
        dot_iface: false,
        depth: 0,
        nest: 0,
    };
    match s.walk_list(data, &tree.root) {
        Ok(()) => Ok(s.out),
        Err(Flow::Err(e)) => Err(e),
        // The parser rejects break/continue outside range.
        Err(Flow::Break | Flow::Continue) => Ok(s.out),
    }
}

impl<'a> State<'a> {
    fn at(&mut self, at: At<'a>) {
        self.at = at;
    }

    /// Go's `state.errorf`: `template: loc: executing "name" at <ctx>: msg`.
    fn errorf(&self, msg: impl Into<String>) -> Flow {
        let msg = msg.into();
        let (pos, ctx) = match self.at {
            At::None => {
                return Flow::Err(TemplateError::Exec(format!(
                    "template: {}: {}",
                    self.tmpl_name, msg
                )));
            }
            At::Node(n) => (n.pos(), n.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Arg(a) => (a.pos(), a.to_string()),
        };
        Flow::Err(TemplateError::Exec(format!(
            "template: {}: executing {} at <{}>: {}",
            self.tree.location(pos),
            quote(self.tmpl_name),
            ctx,
            msg
        )))
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(self.errorf(format!(
                "execution exceeded the limit of {} steps: simplify the template",
                self.limits.max_steps
            )));
        }
        Ok(())
    }

    /// Charges a function result to the step budget (a step per KiB) and
    /// caps string results, so that building large values in a loop is
    /// bounded like any other work.
    fn charge(&mut self, v: &Value, node: At<'a>, name: &str) -> R<()> {
        let size = match v {
            Value::Str(s) => s.len(),
            Value::List(l) => l.items.len() * 16,
            Value::Map(m) => m.entries.len() * 32,
            _ => 0,
        };
        if size > super::MAX_VALUE_BYTES {
            self.at(node);
            return Err(self.errorf(format!(
                "error calling {name}: result of {size} bytes exceeds the limit of {} bytes",
                super::MAX_VALUE_BYTES
            )));
        }
        self.steps += (size / 1024) as u64;
        self.step()
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > self.limits.max_output_bytes {
            return Err(self.errorf(format!(
                "output exceeds the limit of {} bytes",
                self.limits.max_output_bytes
            )));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn var_value(&self, name: &str) -> R<(Value, bool)> {
        for (n, v, iface) in self.vars.iter().rev() {
            if *n == name {
                return Ok((v.clone(), *iface));
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn set_var(&mut self, name: &str, value: Value) -> R<()> {
        for (n, v, iface) in self.vars.iter_mut().rev() {
            if *n == name {
                *v = value;
                *iface = false;
                return Ok(());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn set_top_var(&mut self, n: usize, value: Value, iface: bool) {
        let len = self.vars.len();
        if n <= len {
            self.vars[len - n].1 = value;
            self.vars[len - n].2 = iface;
        }
    }

    /// Walks `list` with a new dot, recording whether it is held as an
    /// interface.
    fn walk_list_as(&mut self, dot: &Value, iface: bool, list: &'a ListNode) -> R<()> {
        let saved = std::mem::replace(&mut self.dot_iface, iface);
        let r = self.walk_list(dot, list);
        self.dot_iface = saved;
        r
    }

    fn walk_list(&mut self, dot: &Value, list: &'a ListNode) -> R<()> {
        for n in &list.nodes {
            self.walk(dot, n)?;
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &'a Node) -> R<()> {
        self.at(At::Node(node));
        self.step()?;
        match node {
            Node::Action { pipe, .. } => {
                let val = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print_value(node, &val)?;
                }
                Ok(())
            }
            Node::Break { .. } => Err(Flow::Break),
            Node::Continue { .. } => Err(Flow::Continue),
            Node::If(b) => self.walk_if_or_with(false, dot, b),
            Node::With(b) => self.walk_if_or_with(true, dot, b),
            Node::Range(b) => self.walk_range(dot, node, b),
            Node::Template { name, pipe, .. } => self.walk_template(dot, node, name, pipe.as_ref()),
            Node::Text { text, .. } => self.write(text),
        }
    }

    fn enter(&mut self) -> R<()> {
        self.nest += 1;
        if self.nest > MAX_EXEC_NESTING {
            return Err(self.errorf(format!(
                "exceeded maximum nesting of {MAX_EXEC_NESTING} control structures, pipelines and template calls"
            )));
        }
        Ok(())
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Value, b: &'a Branch) -> R<()> {
        self.enter()?;
        let r = self.if_or_with_body(with, dot, b);
        self.nest -= 1;
        r
    }

    fn if_or_with_body(&mut self, with: bool, dot: &Value, b: &'a Branch) -> R<()> {
        let mark = self.vars.len();
        let r = (|| {
            let val = self.eval_pipeline(dot, &b.pipe)?;
            if val.truth() {
                if with {
                    self.walk_list_as(&val, false, &b.list)
                } else {
                    self.walk_list(dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk_list(dot, e)
            } else {
                Ok(())
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, node: &'a Node, r: &'a Branch) -> R<()> {
        self.at(At::Node(node));
        self.enter()?;
        let outer = self.vars.len();
        let res = self.range_body(dot, r);
        self.vars.truncate(outer);
        self.nest -= 1;
        res
    }

    fn range_body(&mut self, dot: &Value, r: &'a Branch) -> R<()> {
        let val = self.eval_pipeline(dot, &r.pipe)?;
        let mark = self.vars.len();
        // Iterate in place: a range must not copy its container, and
        // `range 1000000000` must not materialise the sequence.
        let ran = match &val {
            Value::List(l) => {
                let l = l.clone();
                for (i, v) in l.items.iter().enumerate() {
                    let go_on =
                        self.range_one(r, mark, l.ty.elem_iface, Value::Int(i as i64), v)?;
                    if !go_on {
                        break;
                    }
                }
                !l.items.is_empty()
            }
            Value::Map(m) => {
                let m = m.clone();
                for (k, v) in &m.entries {
                    let go_on =
                        self.range_one(r, mark, m.ty.elem_iface, Value::from(k.as_str()), v)?;
                    if !go_on {
                        break;
                    }
                }
                !m.entries.is_empty()
            }
            // Go 1.24 ranges over integers: 0..n, the value in both slots.
            Value::Int(n) => {
                if r.pipe.decl.len() > 1 {
                    return Err(self.errorf(format!(
                        "can't use {} to iterate over more than one variable",
                        display(&val)
                    )));
                }
                for i in 0..(*n).max(0) {
                    if !self.range_one(r, mark, false, Value::Int(i), &Value::Int(i))? {
                        break;
                    }
                }
                *n > 0
            }
            Value::Missing | Value::Nil => false,
            _ => {
                return Err(self.errorf(format!("range can't iterate over {}", display(&val))));
            }
        };
        if !ran && let Some(e) = &r.else_list {
            return self.walk_list(dot, e);
        }
        Ok(())
    }

    /// One iteration of a range body; false when `{{break}}` ended the loop.
    fn range_one(
        &mut self,
        r: &'a Branch,
        mark: usize,
        elem_iface: bool,
        index: Value,
        elem: &Value,
    ) -> R<bool> {
        self.step()?;
        if let Some(first) = r.pipe.decl.first() {
            if r.pipe.is_assign {
                let v = if r.pipe.decl.len() > 1 {
                    index.clone()
                } else {
                    elem.clone()
                };
                self.set_var(&first.ident[0], v)?;
            } else {
                self.set_top_var(1, elem.clone(), elem_iface);
            }
        }
        if let Some(second) = r.pipe.decl.get(1) {
            if r.pipe.is_assign {
                self.set_var(&second.ident[0], elem.clone())?;
            } else {
                self.set_top_var(2, index, false);
            }
        }
        let res = self.walk_list_as(elem, elem_iface, &r.list);
        self.vars.truncate(mark);
        match res {
            Ok(()) | Err(Flow::Continue) => Ok(true),
            Err(Flow::Break) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        node: &'a Node,
        name: &str,
        pipe: Option<&'a Pipe>,
    ) -> R<()> {
        self.at(At::Node(node));
        let Some(tree) = self.set.tree(name) else {
            return Err(self.errorf(format!("template {} not defined", quote(name))));
        };
        if self.depth >= self.limits.max_depth {
            return Err(self.errorf(format!(
                "exceeded maximum template depth ({})",
                self.limits.max_depth
            )));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Missing,
        };
        self.call_tree(tree, new_dot)
    }

    /// Runs another template of the set in a fresh variable scope.
    fn call_tree(&mut self, tree: &'a Tree, dot: Value) -> R<()> {
        self.enter()?;
        let r = self.call_tree_body(tree, dot);
        self.nest -= 1;
        r
    }

    fn call_tree_body(&mut self, tree: &'a Tree, dot: Value) -> R<()> {
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", dot.clone(), false)]);
        let (saved_name, saved_tree) = (self.tmpl_name, self.tree);
        self.tmpl_name = &tree.name;
        self.tree = tree;
        self.depth += 1;
        let r = self.walk_list_as(&dot, false, &tree.root);
        self.depth -= 1;
        self.tmpl_name = saved_name;
        self.tree = saved_tree;
        self.vars = saved_vars;
        r
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'a Pipe) -> R<Value> {
        self.at(At::Pipe(pipe));
        self.enter()?;
        let r = self.eval_pipeline_body(dot, pipe);
        self.nest -= 1;
        r
    }

    fn eval_pipeline_body(&mut self, dot: &Value, pipe: &'a Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // A nil interface result is "no value" from here on.
            value = Some(match v {
                Value::Nil => Value::Missing,
                v => v,
            });
        }
        let value = value.unwrap_or(Value::Missing);
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(&var.ident[0], value.clone())?;
            } else {
                self.vars.push((&var.ident[0], value.clone(), false));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if let Some(first) = args.first()
            && (args.len() > 1 || fin.is_some())
        {
            return Err(self.errorf(format!("can't give argument to non-function {first}")));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'a Command, fin: Option<Value>) -> R<Value> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Arg::Field { ident, .. } => {
                self.at(At::Arg(first));
                let iface = self.dot_iface;
                return self.eval_field_chain(
                    dot,
                    dot.clone(),
                    iface,
                    first,
                    ident,
                    &cmd.args,
                    fin,
                );
            }
            Arg::Chain { .. } => return self.eval_chain_node(dot, first, &cmd.args, fin),
            Arg::Identifier { name, .. } => {
                return self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args, fin);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { .. } => return self.eval_variable_node(dot, first, &cmd.args, fin),
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => Err(self.errorf("nil is not a command")),
            Arg::Number { .. } => self.ideal_constant(first),
            Arg::String { text, .. } => Ok(Value::from(text.as_str())),
            _ => Err(self.errorf(format!(
                "can't evaluate command {}",
                quote(&first.to_string())
            ))),
        }
    }

    fn ideal_constant(&mut self, n: &'a Arg) -> R<Value> {
        self.at(At::Arg(n));
        let Arg::Number { num, .. } = n else {
            return Ok(Value::Missing);
        };
        let t = &num.text;
        let is_hex = t.len() > 2
            && t.starts_with('0')
            && (t.as_bytes()[1] == b'x' || t.as_bytes()[1] == b'X')
            && !t.contains(['p', 'P']);
        let is_rune = t.starts_with('\'');
        if num.is_float && !is_hex && !is_rune && t.contains(['.', 'e', 'E', 'p', 'P']) {
            return Ok(Value::Float(num.float));
        }
        if num.is_int {
            return Ok(Value::Int(num.int));
        }
        if num.is_uint {
            return Err(self.errorf(format!("{t} overflows int")));
        }
        Ok(Value::Missing)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Value,
        chain: &'a Arg,
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at(At::Arg(chain));
        let Arg::Chain { node, field, .. } = chain else {
            return Ok(Value::Missing);
        };
        if matches!(node.as_ref(), Arg::Nil { .. }) {
            return Err(self.errorf(format!("indirection through explicit nil in {chain}")));
        }
        let pipe = self.eval_arg(dot, None, node)?;
        self.eval_field_chain(dot, pipe, false, chain, field, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Value,
        var: &'a Arg,
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at(At::Arg(var));
        let Arg::Variable { ident, .. } = var else {
            return Ok(Value::Missing);
        };
        let (value, iface) = self.var_value(&ident[0])?;
        if ident.len() == 1 {
            self.not_a_function(args, &fin)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, iface, var, &ident[1..], args, fin)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        mut iface: bool,
        node: &'a Arg,
        ident: &'a [String],
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let n = ident.len();
        for id in &ident[..n - 1] {
            let next_iface = matches!(&receiver, Value::Map(m) if m.ty.elem_iface);
            receiver = self.eval_field(dot, id, node, &[], None, receiver, iface)?;
            iface = next_iface;
        }
        self.eval_field(dot, &ident[n - 1], node, args, fin, receiver, iface)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &'a Arg,
        args: &'a [Arg],
        fin: Option<Value>,
        receiver: Value,
        iface: bool,
    ) -> R<Value> {
        match &receiver {
            Value::Missing => {
                if self.missing_key == MissingKey::Error {
                    return Err(self.errorf(format!("nil data; no entry for key {}", quote(name))));
                }
                return Ok(Value::Missing);
            }
            Value::Nil => {
                return Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}")));
            }
            _ => {}
        }
        if let Some(m) = receiver.methods().iter().find(|m| m.name == name) {
            let callee = Callee::Method(m, receiver.clone());
            return self.eval_call(dot, callee, At::Arg(node), name, args, fin);
        }
        let has_args = args.len() > 1 || fin.is_some();
        match &receiver {
            Value::Struct(s) => {
                if let Some(v) = s.field(name) {
                    if has_args {
                        return Err(self.errorf(format!(
                            "{name} has arguments but cannot be invoked as function"
                        )));
                    }
                    return Ok(v.clone());
                }
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                return match m.entries.get(name) {
                    Some(v) => Ok(v.clone()),
                    None => match self.missing_key {
                        MissingKey::Invalid => Ok(Value::Missing),
                        MissingKey::Zero => Ok((m.ty.elem_zero)()),
                        MissingKey::Error => {
                            Err(self.errorf(format!("map has no entry for key {}", quote(name))))
                        }
                    },
                };
            }
            _ => {}
        }
        let typ = if iface {
            "interface {}"
        } else {
            receiver.type_name()
        };
        Err(self.errorf(format!("can't evaluate field {name} in type {typ}")))
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        node: &'a Arg,
        name: &str,
        cmd_at: At<'a>,
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at(At::Arg(node));
        let callee = if let Some(f) = self.funcs.get(name) {
            Callee::Func(f)
        } else if let Some(b) = builtins::lookup(name) {
            Callee::Builtin(b)
        } else {
            return Err(self.errorf(format!("{} is not a defined function", quote(name))));
        };
        self.eval_call(dot, callee, cmd_at, name, args, fin)
    }

    /// Go's `evalCall`: checks the argument count and types against the
    /// callee's parameters, evaluates arguments (lazily for `and`/`or`) and
    /// calls.
    fn eval_call(
        &mut self,
        dot: &Value,
        callee: Callee<'a>,
        node: At<'a>,
        name: &str,
        args: &'a [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let args: &'a [Arg] = if args.is_empty() { args } else { &args[1..] };
        let (params, variadic) = callee.params();
        let params = params.to_vec();
        let num_in = args.len() + usize::from(fin.is_some());
        let mut num_fixed = args.len();
        if variadic.is_some() {
            num_fixed = params.len();
            if num_in < num_fixed {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    params.len(),
                    args.len()
                )));
            }
        } else if num_in != params.len() {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want {} got {num_in}",
                params.len()
            )));
        }
        if let Callee::Builtin(b) = &callee
            && (b.name == "and" || b.name == "or")
        {
            let want = b.name == "or";
            let mut v = Value::Missing;
            for arg in args {
                v = self.eval_arg(dot, Some(Param::Any), arg)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut argv: Vec<Value> = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < num_fixed && i < args.len() {
            argv.push(self.eval_arg(dot, Some(params[i]), &args[i])?);
            i += 1;
        }
        if let Some(vt) = variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, Some(vt), &args[i])?);
                i += 1;
            }
        }
        if let Some(f) = fin {
            let mut t = params.last().copied().unwrap_or(Param::Any);
            if let Some(vt) = variadic {
                t = if num_in - 1 < num_fixed {
                    params[num_in - 1]
                } else {
                    vt
                };
            }
            argv.push(self.validate_type(f, Some(t))?);
        }
        let result = match &callee {
            Callee::Func(f) => match &f.kind {
                Kind::Native(body) => body(&argv),
                Kind::ExecTemplate => return self.exec_named(node, &argv),
            },
            Callee::Builtin(b) => (b.call)(&argv),
            Callee::Method(m, recv) => (m.call)(recv, &argv),
        };
        match result {
            Ok(v) => {
                self.charge(&v, node, name)?;
                Ok(v)
            }
            Err(e) => {
                self.at(node);
                Err(self.errorf(format!("error calling {name}: {e}")))
            }
        }
    }

    /// Prometheus's `tmpl`: the output of a named template as a value.
    fn exec_named(&mut self, node: At<'a>, argv: &[Value]) -> R<Value> {
        let name = argv
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let data = argv.get(1).cloned().unwrap_or(Value::Missing);
        let Some(tree) = self.set.tree(&name) else {
            self.at(node);
            return Err(self.errorf(format!(
                "error calling tmpl: template: no template {} associated with template {}",
                quote(&name),
                quote(self.set.root_name())
            )));
        };
        if self.depth >= self.limits.max_depth {
            return Err(self.errorf(format!(
                "exceeded maximum template depth ({})",
                self.limits.max_depth
            )));
        }
        let saved = std::mem::take(&mut self.out);
        let r = self.call_tree(tree, data);
        let produced = std::mem::replace(&mut self.out, saved);
        match r {
            Ok(()) => Ok(Value::from(produced)),
            Err(Flow::Err(e)) => {
                self.at(node);
                Err(self.errorf(format!("error calling tmpl: {e}")))
            }
            Err(f) => Err(f),
        }
    }

    fn can_be_nil(p: Param) -> bool {
        matches!(p, Param::Any | Param::Typed(_))
    }

    fn zero_of(p: Param) -> Value {
        match p {
            Param::Typed(t) if t.name.starts_with("[]") || t.name.starts_with("map[") => {
                if t.name.starts_with("[]") {
                    Value::typed_list(t, Vec::new())
                } else {
                    Value::typed_map(t, Default::default())
                }
            }
            _ => Value::Missing,
        }
    }

    /// Go's `validateType`: a value passed to a parameter must be of its
    /// type; nil becomes the parameter type's zero value where it can.
    fn validate_type(&mut self, value: Value, typ: Option<Param>) -> R<Value> {
        let Some(typ) = typ else {
            return Ok(value);
        };
        if matches!(value, Value::Missing) {
            if Self::can_be_nil(typ) {
                return Ok(match typ {
                    Param::Any => Value::Missing,
                    p => Self::zero_of(p),
                });
            }
            return Err(self.errorf(format!("invalid value; expected {}", typ.go_name())));
        }
        if !value.assignable_to(typ) {
            return Err(self.errorf(format!(
                "wrong type for value; expected {}; got {}",
                typ.go_name(),
                value.type_name()
            )));
        }
        Ok(value)
    }

    /// Go's `evalArg`: constants are checked against the parameter type
    /// directly ("expected string; found 3"), computed values through
    /// `validate_type`.
    fn eval_arg(&mut self, dot: &Value, typ: Option<Param>, n: &'a Arg) -> R<Value> {
        self.at(At::Arg(n));
        match n {
            Arg::Dot { .. } => return self.validate_type(dot.clone(), typ),
            Arg::Nil { .. } => {
                let t = typ.unwrap_or(Param::Any);
                if Self::can_be_nil(t) {
                    return Ok(match t {
                        Param::Any => Value::Missing,
                        p => Self::zero_of(p),
                    });
                }
                return Err(self.errorf(format!("cannot assign nil to {}", t.go_name())));
            }
            Arg::Field { ident, .. } => {
                let iface = self.dot_iface;
                let v = self.eval_field_chain(
                    dot,
                    dot.clone(),
                    iface,
                    n,
                    ident,
                    std::slice::from_ref(n),
                    None,
                )?;
                return self.validate_type(v, typ);
            }
            Arg::Variable { .. } => {
                let v = self.eval_variable_node(dot, n, &[], None)?;
                return self.validate_type(v, typ);
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, p)?;
                return self.validate_type(v, typ);
            }
            Arg::Identifier { name, .. } => {
                let v = self.eval_function(dot, n, name, At::Arg(n), &[], None)?;
                return self.validate_type(v, typ);
            }
            Arg::Chain { .. } => {
                let v = self.eval_chain_node(dot, n, &[], None)?;
                return self.validate_type(v, typ);
            }
            _ => {}
        }
        match typ.unwrap_or(Param::Any) {
            Param::Bool => match n {
                Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
                _ => Err(self.errorf(format!("expected bool; found {n}"))),
            },
            Param::String => match n {
                Arg::String { text, .. } => Ok(Value::from(text.as_str())),
                _ => Err(self.errorf(format!("expected string; found {n}"))),
            },
            Param::Float => match n {
                Arg::Number { num, .. } if num.is_float => Ok(Value::Float(num.float)),
                _ => Err(self.errorf(format!("expected float; found {n}"))),
            },
            Param::Int => match n {
                Arg::Number { num, .. } if num.is_int => Ok(Value::Int(num.int)),
                _ => Err(self.errorf(format!("expected integer; found {n}"))),
            },
            Param::Any => match n {
                Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
                Arg::Number { .. } => self.ideal_constant(n),
                Arg::String { text, .. } => Ok(Value::from(text.as_str())),
                _ => Err(self.errorf(format!(
                    "can't handle assignment of {n} to empty interface argument"
                ))),
            },
            t => Err(self.errorf(format!("can't handle {n} for arg of type {}", t.go_name()))),
        }
    }

    fn print_value(&mut self, node: &'a Node, v: &Value) -> R<()> {
        self.at(At::Node(node));
        let s = match v {
            Value::Missing | Value::Nil => "<no value>".to_string(),
            v => display(v),
        };
        self.write(&s)
    }
}
