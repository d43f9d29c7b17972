//! Template parser: tokens to a tree per template (the main text and each
//! `define`/`block`), following Go's `text/template/parse` step for step so
//! that the trees, the set of accepted programs and the error messages
//! (`template: name:3: unexpected "}" in operand`) are Go's.
//!
//! Where Go versions differ this follows newer Go: `{{else with}}` (Go
//! 1.23). Complex-number literals are rejected: no template function takes
//! one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::TemplateError;
use super::gofmt::quote;
use super::lex::{Item, ItemType, lex};

/// Nesting limit for parentheses and control structures: templates are user
/// input and both the parser and the executor recurse on nesting.
const MAX_NESTING: usize = 100;

/// One parsed template.
#[derive(Debug)]
pub(crate) struct Tree {
    pub name: String,
    /// Name of the template being parsed when this tree was created; errors
    /// report positions relative to it, as Go does.
    pub parse_name: Arc<str>,
    pub text: Arc<str>,
    pub root: ListNode,
}

impl Tree {
    /// `name:line:col` of a byte position (Go's `ErrorContext`; the column
    /// counts bytes from the line start, starting at 0 on later lines and at
    /// the position itself on the first).
    pub fn location(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let before = &self.text.as_bytes()[..pos];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let col = match before.iter().rposition(|&b| b == b'\n') {
            Some(nl) => pos - (nl + 1),
            None => pos,
        };
        format!("{}:{}:{}", self.parse_name, line, col)
    }
}

#[derive(Debug)]
pub(crate) struct ListNode {
    pub nodes: Vec<Node>,
}

#[derive(Debug)]
pub(crate) enum Node {
    Text {
        pos: usize,
        text: String,
    },
    Action {
        pos: usize,
        pipe: Pipe,
    },
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break {
        pos: usize,
    },
    Continue {
        pos: usize,
    },
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: ListNode,
    pub else_list: Option<ListNode>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<VarNode>,
    pub cmds: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct VarNode {
    pub ident: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) struct Number {
    pub text: String,
    pub is_int: bool,
    pub int: i64,
    pub is_uint: bool,
    pub is_float: bool,
    pub float: f64,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Field {
        pos: usize,
        ident: Vec<String>,
    },
    Variable {
        pos: usize,
        ident: Vec<String>,
    },
    Chain {
        pos: usize,
        node: Box<Arg>,
        field: Vec<String>,
    },
    Identifier {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Bool {
        pos: usize,
        val: bool,
    },
    Number {
        pos: usize,
        num: Number,
    },
    String {
        pos: usize,
        quoted: String,
        text: String,
    },
    Pipe(Box<Pipe>),
}

impl Node {
    pub fn pos(&self) -> usize {
        match self {
            Node::Text { pos, .. }
            | Node::Action { pos, .. }
            | Node::Template { pos, .. }
            | Node::Break { pos }
            | Node::Continue { pos } => *pos,
            Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
        }
    }
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Bool { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::String { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

// Go's node String() methods: they appear in error contexts (`at <.x>`).

impl fmt::Display for ListNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nodes {
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Text { text, .. } => f.write_str(text),
            Node::Action { pipe, .. } => write!(f, "{{{{{pipe}}}}}"),
            Node::If(b) => write_branch(f, "if", b),
            Node::Range(b) => write_branch(f, "range", b),
            Node::With(b) => write_branch(f, "with", b),
            Node::Template { name, pipe, .. } => {
                write!(f, "{{{{template {}", quote(name))?;
                if let Some(p) = pipe {
                    write!(f, " {p}")?;
                }
                f.write_str("}}")
            }
            Node::Break { .. } => f.write_str("{{break}}"),
            Node::Continue { .. } => f.write_str("{{continue}}"),
        }
    }
}

fn write_branch(f: &mut fmt::Formatter<'_>, name: &str, b: &Branch) -> fmt::Result {
    write!(f, "{{{{{name} {}}}}}{}", b.pipe, b.list)?;
    if let Some(e) = &b.else_list {
        write!(f, "{{{{else}}}}{e}")?;
    }
    f.write_str("{{end}}")
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            for (i, v) in self.decl.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&v.ident.join("."))?;
            }
            f.write_str(" := ")?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match a {
                Arg::Pipe(p) => write!(f, "({p})")?,
                _ => write!(f, "{a}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { ident, .. } => {
                for id in ident {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            Arg::Variable { ident, .. } => f.write_str(&ident.join(".")),
            Arg::Chain { node, field, .. } => {
                match node.as_ref() {
                    Arg::Pipe(p) => write!(f, "({p})")?,
                    n => write!(f, "{n}")?,
                }
                for id in field {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            Arg::Identifier { name, .. } => f.write_str(name),
            Arg::Dot { .. } => f.write_str("."),
            Arg::Nil { .. } => f.write_str("nil"),
            Arg::Bool { val, .. } => write!(f, "{val}"),
            Arg::Number { num, .. } => f.write_str(&num.text),
            Arg::String { quoted, .. } => f.write_str(quoted),
            Arg::Pipe(p) => write!(f, "{p}"),
        }
    }
}

/// Whether a tree has no content: only whitespace text (Go's
/// `IsEmptyTree`). An empty definition does not replace a real one.
pub(crate) fn is_empty_list(l: &ListNode) -> bool {
    l.nodes.iter().all(|n| match n {
        Node::Text { text, .. } => text.trim().is_empty(),
        _ => false,
    })
}

/// Lexer state shared by the trees of one parse (the main text and the
/// `define`s inside it read from the same token stream).
struct Shared<'a> {
    items: Vec<Item>,
    next: usize,
    has_func: &'a dyn Fn(&str) -> bool,
    trees: HashMap<String, Tree>,
    text: Arc<str>,
    parse_name: Arc<str>,
}

impl Shared<'_> {
    fn next_item(&mut self) -> Item {
        match self.items.get(self.next) {
            Some(i) => {
                self.next += 1;
                i.clone()
            }
            // The lexer always ends with EOF or an error; past it, keep
            // returning the last token as Go's drained channel would.
            None => self.items.last().cloned().unwrap_or(Item {
                typ: ItemType::Eof,
                pos: 0,
                val: String::new(),
                line: 1,
            }),
        }
    }
}

type PResult<T> = Result<T, TemplateError>;

struct TreeParser<'s, 'a> {
    sh: &'s mut Shared<'a>,
    name: String,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    action_line: usize,
    range_depth: usize,
    depth: usize,
}

/// Parses `text` as template `name`: the trees of `name` and of every
/// `define`/`block` in it, keyed by template name.
pub(crate) fn parse(
    name: &str,
    text: &str,
    has_func: &dyn Fn(&str) -> bool,
) -> Result<HashMap<String, Tree>, TemplateError> {
    let items = lex(text, !has_func("break"), !has_func("continue"));
    let mut sh = Shared {
        items,
        next: 0,
        has_func,
        trees: HashMap::new(),
        text: Arc::from(text),
        parse_name: Arc::from(name),
    };
    let mut t = TreeParser::new(&mut sh, name.to_string());
    let root = t.parse_top()?;
    t.add(root)?;
    Ok(sh.trees)
}

fn blank_item() -> Item {
    Item {
        typ: ItemType::Eof,
        pos: 0,
        val: String::new(),
        line: 0,
    }
}

impl<'s, 'a> TreeParser<'s, 'a> {
    fn new(sh: &'s mut Shared<'a>, name: String) -> Self {
        TreeParser {
            sh,
            name,
            token: [blank_item(), blank_item(), blank_item()],
            peek_count: 0,
            vars: vec!["$".to_string()],
            action_line: 0,
            range_depth: 0,
            depth: 0,
        }
    }

    fn errorf(&self, msg: impl fmt::Display) -> TemplateError {
        TemplateError::Parse(format!(
            "template: {}:{}: {}",
            self.sh.parse_name, self.token[0].line, msg
        ))
    }

    fn next(&mut self) -> Item {
        if self.peek_count > 0 {
            self.peek_count -= 1;
        } else {
            self.token[0] = self.sh.next_item();
        }
        self.token[self.peek_count].clone()
    }

    fn backup(&mut self) {
        self.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.token[1] = t1;
        self.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.token[1] = t1;
        self.token[2] = t2;
        self.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.peek_count > 0 {
            return self.token[self.peek_count - 1].clone();
        }
        self.peek_count = 1;
        self.token[0] = self.sh.next_item();
        self.token[0].clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != ItemType::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn expect(&mut self, expected: ItemType, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.typ != expected {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    fn unexpected(&self, token: &Item, context: &str) -> TemplateError {
        if token.typ == ItemType::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(
                    " in action started at {}:{}",
                    self.sh.parse_name, self.action_line
                );
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{}{}", token.describe(), extra));
        }
        self.errorf(format!("unexpected {} in {}", token.describe(), context))
    }

    fn nest(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.errorf(format!(
                "max expression depth exceeded (templates may nest at most {MAX_NESTING} levels)"
            )));
        }
        Ok(())
    }

    fn add(&mut self, root: ListNode) -> PResult<()> {
        let empty_new = is_empty_list(&root);
        let replace = match self.sh.trees.get(&self.name) {
            None => true,
            Some(old) => is_empty_list(&old.root),
        };
        if !replace {
            if !empty_new {
                return Err(self.errorf(format!(
                    "template: multiple definition of template {}",
                    quote(&self.name)
                )));
            }
            return Ok(());
        }
        let tree = Tree {
            name: self.name.clone(),
            parse_name: self.sh.parse_name.clone(),
            text: self.sh.text.clone(),
            root,
        };
        self.sh.trees.insert(self.name.clone(), tree);
        Ok(())
    }

    fn parse_top(&mut self) -> PResult<ListNode> {
        let mut root = ListNode { nodes: Vec::new() };
        while self.peek().typ != ItemType::Eof {
            if self.peek().typ == ItemType::LeftDelim {
                let delim = self.next();
                if self.next_non_space().typ == ItemType::Define {
                    let mut sub = TreeParser::new(&mut *self.sh, "definition".to_string());
                    sub.parse_definition()?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action()? {
                Parsed::End => return Err(self.errorf("unexpected {{end}}")),
                Parsed::Else { .. } => return Err(self.errorf("unexpected {{else}}")),
                Parsed::Node(n) => root.nodes.push(n),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        let context = "define clause";
        let name = self.next_non_space();
        if name.typ != ItemType::String && name.typ != ItemType::RawString {
            return Err(self.unexpected(&name, context));
        }
        self.name = unquote(&name.val).map_err(|e| self.errorf(e))?;
        self.expect(ItemType::RightDelim, context)?;
        let (list, end) = self.item_list()?;
        match end {
            Parsed::End => {}
            Parsed::Else { .. } => {
                return Err(self.errorf(format!("unexpected {{{{else}}}} in {context}")));
            }
            Parsed::Node(_) => {}
        }
        self.add(list)
    }

    fn item_list(&mut self) -> PResult<(ListNode, Parsed)> {
        let mut list = ListNode { nodes: Vec::new() };
        while self.peek_non_space().typ != ItemType::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.nodes.push(n),
                other => return Ok((list, other)),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let token = self.next_non_space();
        match token.typ {
            ItemType::Text => Ok(Parsed::Node(Node::Text {
                pos: token.pos,
                text: token.val,
            })),
            ItemType::LeftDelim => {
                self.action_line = token.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let token = self.next_non_space();
        match token.typ {
            ItemType::Block => return self.block_control().map(Parsed::Node),
            ItemType::Break => {
                return self.break_control("{{break}}", Node::Break { pos: token.pos });
            }
            ItemType::Continue => {
                return self.break_control("{{continue}}", Node::Continue { pos: token.pos });
            }
            ItemType::Else => return self.else_control(),
            ItemType::End => {
                self.expect(ItemType::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            ItemType::If => return self.control(Control::If).map(Parsed::Node),
            ItemType::Range => return self.control(Control::Range).map(Parsed::Node),
            ItemType::Template => return self.template_control().map(Parsed::Node),
            ItemType::With => return self.control(Control::With).map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let token = self.peek();
        let pipe = self.pipeline("command", ItemType::RightDelim)?;
        Ok(Parsed::Node(Node::Action {
            pos: token.pos,
            pipe,
        }))
    }

    fn break_control(&mut self, context: &str, node: Node) -> PResult<Parsed> {
        let token = self.next_non_space();
        if token.typ != ItemType::RightDelim {
            return Err(self.unexpected(&token, context));
        }
        if self.range_depth == 0 {
            return Err(self.errorf(format!("{context} outside {{{{range}}}}")));
        }
        Ok(Parsed::Node(node))
    }

    fn pipeline(&mut self, context: &str, end: ItemType) -> PResult<Pipe> {
        let token = self.peek_non_space();
        let mut pipe = Pipe {
            pos: token.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.typ != ItemType::Variable {
                break 'decls;
            }
            self.next();
            let token_after_variable = self.peek();
            let next = self.peek_non_space();
            if next.typ == ItemType::Assign || next.typ == ItemType::Declare {
                pipe.is_assign = next.typ == ItemType::Assign;
                self.next_non_space();
                pipe.decl.push(VarNode {
                    ident: split_ident(&v.val),
                });
                self.vars.push(v.val.clone());
            } else if next.typ == ItemType::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(VarNode {
                    ident: split_ident(&v.val),
                });
                self.vars.push(v.val.clone());
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        ItemType::Variable | ItemType::RightDelim | ItemType::RightParen => {
                            continue 'decls;
                        }
                        _ => return Err(self.errorf("range can only initialize variables")),
                    }
                }
                return Err(self.errorf(format!("too many declarations in {context}")));
            } else if token_after_variable.typ == ItemType::Space {
                self.backup3(v, token_after_variable);
            } else {
                self.backup2(v);
            }
            break 'decls;
        }
        loop {
            let token = self.next_non_space();
            if token.typ == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match token.typ {
                ItemType::Bool
                | ItemType::CharConstant
                | ItemType::Complex
                | ItemType::Dot
                | ItemType::Field
                | ItemType::Identifier
                | ItemType::Number
                | ItemType::Nil
                | ItemType::RawString
                | ItemType::String
                | ItemType::Variable
                | ItemType::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Number { .. }
                        | Arg::String { .. }
                )
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn control(&mut self, kind: Control) -> PResult<Node> {
        self.nest()?;
        let mark = self.vars.len();
        let r = self.parse_control(kind);
        self.vars.truncate(mark);
        self.depth -= 1;
        let (pos, pipe, list, else_list) = r?;
        let b = Branch {
            pos,
            pipe,
            list,
            else_list,
        };
        Ok(match kind {
            Control::If => Node::If(b),
            Control::Range => Node::Range(b),
            Control::With => Node::With(b),
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse_control(
        &mut self,
        kind: Control,
    ) -> PResult<(usize, Pipe, ListNode, Option<ListNode>)> {
        let context = kind.name();
        let pipe = self.pipeline(context, ItemType::RightDelim)?;
        if kind == Control::Range {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if kind == Control::Range {
            self.range_depth -= 1;
        }
        let (list, next) = r?;
        let mut else_list = None;
        match next {
            Parsed::End | Parsed::Node(_) => {}
            Parsed::Else { .. } => {
                // "{{else if}}" and "{{else with}}" continue the chain: the
                // else node left the keyword pending; parse it as a nested
                // control whose {{end}} closes both.
                let chained = match (kind, self.peek().typ) {
                    (Control::If, ItemType::If) => Some(Control::If),
                    (Control::With, ItemType::With) => Some(Control::With),
                    _ => None,
                };
                if let Some(k) = chained {
                    self.next();
                    let node = self.control(k)?;
                    else_list = Some(ListNode { nodes: vec![node] });
                } else {
                    let (l, next) = self.item_list()?;
                    match next {
                        Parsed::End => {}
                        Parsed::Else { .. } => {
                            return Err(self.errorf("expected end; found {{else}}"));
                        }
                        Parsed::Node(n) => {
                            return Err(self.errorf(format!("expected end; found {n}")));
                        }
                    }
                    else_list = Some(l);
                }
            }
        }
        Ok((pipe.pos, pipe, list, else_list))
    }

    fn else_control(&mut self) -> PResult<Parsed> {
        let peek = self.peek_non_space();
        if peek.typ == ItemType::If || peek.typ == ItemType::With {
            return Ok(Parsed::Else { _pos: peek.pos });
        }
        let token = self.expect(ItemType::RightDelim, "else")?;
        Ok(Parsed::Else { _pos: token.pos })
    }

    fn block_control(&mut self) -> PResult<Node> {
        let context = "block clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, context)?;
        let pipe = self.pipeline(context, ItemType::RightDelim)?;
        let mut block = TreeParser::new(&mut *self.sh, name.clone());
        block.depth = self.depth;
        let (list, end) = block.item_list()?;
        if !matches!(end, Parsed::End) {
            let what = match end {
                Parsed::Else { .. } => "{{else}}".to_string(),
                Parsed::Node(n) => n.to_string(),
                Parsed::End => String::new(),
            };
            return Err(self.errorf(format!("unexpected {what} in {context}")));
        }
        block.add(list)?;
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, context)?;
        let mut pipe = None;
        if self.next_non_space().typ != ItemType::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(context, ItemType::RightDelim)?);
        }
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe,
        })
    }

    fn parse_template_name(&self, token: &Item, context: &str) -> PResult<String> {
        match token.typ {
            ItemType::String | ItemType::RawString => {
                unquote(&token.val).map_err(|e| self.errorf(e))
            }
            _ => Err(self.unexpected(token, context)),
        }
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let token = self.next();
            match token.typ {
                ItemType::Space => continue,
                ItemType::RightDelim | ItemType::RightParen => self.backup(),
                ItemType::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != ItemType::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == ItemType::Field {
            let f = self.next().val;
            fields.push(f[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { ident, .. } => {
                let mut ident = ident;
                ident.extend(fields);
                Arg::Field { pos, ident }
            }
            Arg::Variable { ident, .. } => {
                let mut ident = ident;
                ident.extend(fields);
                Arg::Variable { pos, ident }
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number { .. }
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return Err(self.errorf(format!(
                    "unexpected . after term {}",
                    quote(&node.to_string())
                )));
            }
            other => Arg::Chain {
                pos,
                node: Box::new(other),
                field: fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.typ {
            ItemType::Identifier => {
                if !(self.sh.has_func)(&token.val) {
                    return Err(self.errorf(format!("function {} not defined", quote(&token.val))));
                }
                Arg::Identifier {
                    pos,
                    name: token.val,
                }
            }
            ItemType::Dot => Arg::Dot { pos },
            ItemType::Nil => Arg::Nil { pos },
            ItemType::Variable => {
                let ident = split_ident(&token.val);
                if !self.vars.iter().any(|v| *v == ident[0]) {
                    return Err(self.errorf(format!("undefined variable {}", quote(&ident[0]))));
                }
                Arg::Variable { pos, ident }
            }
            ItemType::Field => Arg::Field {
                pos,
                ident: token.val[1..].split('.').map(str::to_string).collect(),
            },
            ItemType::Bool => Arg::Bool {
                pos,
                val: token.val == "true",
            },
            ItemType::CharConstant | ItemType::Number => {
                let num = parse_number(&token.val, token.typ).map_err(|e| self.errorf(e))?;
                Arg::Number { pos, num }
            }
            ItemType::Complex => {
                return Err(self.errorf(format!("complex constant {} is not supported", token.val)));
            }
            ItemType::LeftParen => {
                self.nest()?;
                let p = self.pipeline("parenthesized pipeline", ItemType::RightParen);
                self.depth -= 1;
                Arg::Pipe(Box::new(p?))
            }
            ItemType::String | ItemType::RawString => {
                let text = unquote(&token.val).map_err(|e| self.errorf(e))?;
                Arg::String {
                    pos,
                    quoted: token.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Control {
    If,
    Range,
    With,
}

impl Control {
    fn name(self) -> &'static str {
        match self {
            Control::If => "if",
            Control::Range => "range",
            Control::With => "with",
        }
    }
}

/// What `textOrAction` produced: a node, or the `{{end}}`/`{{else}}` that
/// closes the enclosing list.
enum Parsed {
    Node(Node),
    End,
    Else { _pos: usize },
}

fn split_ident(s: &str) -> Vec<String> {
    s.split('.').map(str::to_string).collect()
}

/// Go's `strconv.Unquote` for `"..."` and `` `...` `` literals.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    let invalid = || "invalid syntax".to_string();
    if s.len() < 2 {
        return Err(invalid());
    }
    let (q, body) = (s.as_bytes()[0], &s[1..s.len() - 1]);
    if s.as_bytes()[s.len() - 1] != q {
        return Err(invalid());
    }
    match q {
        b'`' => {
            if body.contains('`') {
                return Err(invalid());
            }
            Ok(body.replace('\r', ""))
        }
        b'"' => {
            let mut out = String::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (c, tail) = unquote_char(rest, '"').ok_or_else(invalid)?;
                out.push_str(&c);
                rest = tail;
            }
            Ok(out)
        }
        _ => Err(invalid()),
    }
}

/// One (possibly escaped) character of a Go literal; returns its UTF-8
/// text and the remaining input.
fn unquote_char(s: &str, quote: char) -> Option<(String, &str)> {
    let c = s.chars().next()?;
    if c == quote && (quote == '\'' || quote == '"') {
        return None;
    }
    if c == '\n' {
        return None;
    }
    if c != '\\' {
        return Some((c.to_string(), &s[c.len_utf8()..]));
    }
    let b = s.as_bytes();
    if b.len() < 2 {
        return None;
    }
    let rest = &s[2..];
    let simple = match b[1] {
        b'a' => Some('\x07'),
        b'b' => Some('\x08'),
        b'f' => Some('\x0c'),
        b'n' => Some('\n'),
        b'r' => Some('\r'),
        b't' => Some('\t'),
        b'v' => Some('\x0b'),
        b'\\' => Some('\\'),
        b'\'' | b'"' => {
            if char::from(b[1]) != quote {
                return None;
            }
            Some(char::from(b[1]))
        }
        _ => None,
    };
    if let Some(c) = simple {
        return Some((c.to_string(), rest));
    }
    let hex = |n: usize| -> Option<(u32, &str)> {
        let digits = rest.get(..n)?;
        let v = u32::from_str_radix(digits, 16).ok()?;
        if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
            return None;
        }
        Some((v, &rest[n..]))
    };
    match b[1] {
        b'x' => {
            let (v, tail) = hex(2)?;
            // A \x escape is a byte; only ASCII bytes make valid UTF-8 alone.
            let c = char::from_u32(v).filter(|_| v < 0x80)?;
            Some((c.to_string(), tail))
        }
        b'u' => {
            let (v, tail) = hex(4)?;
            Some((char::from_u32(v)?.to_string(), tail))
        }
        b'U' => {
            let (v, tail) = hex(8)?;
            Some((char::from_u32(v)?.to_string(), tail))
        }
        b'0'..=b'7' => {
            let digits = s.get(1..4)?;
            if !digits.bytes().all(|d| (b'0'..=b'7').contains(&d)) {
                return None;
            }
            let v = u32::from_str_radix(digits, 8).ok()?;
            if v > 255 {
                return None;
            }
            let c = char::from_u32(v).filter(|_| v < 0x80)?;
            Some((c.to_string(), &s[4..]))
        }
        _ => None,
    }
}

/// Go's `parse.newNumber` for number and character literals.
fn parse_number(text: &str, typ: ItemType) -> Result<Number, String> {
    let mut n = Number {
        text: text.to_string(),
        is_int: false,
        int: 0,
        is_uint: false,
        is_float: false,
        float: 0.0,
    };
    if typ == ItemType::CharConstant {
        let body = &text[1..];
        let (c, tail) = unquote_char(body, '\'').ok_or_else(|| "invalid syntax".to_string())?;
        if tail != "'" {
            return Err(format!("malformed character constant: {text}"));
        }
        let r = i64::from(c.chars().next().map_or(0, u32::from));
        n.is_int = true;
        n.int = r;
        n.is_uint = true;
        n.is_float = true;
        n.float = r as f64;
        return Ok(n);
    }
    if text.ends_with('i') {
        return Err(format!("complex constant {text} is not supported"));
    }
    let u = parse_uint(text);
    if let Some(u) = u {
        n.is_uint = true;
        let _ = u;
    }
    if let Some(i) = parse_int(text) {
        n.is_int = true;
        n.int = i;
        if i == 0 {
            n.is_uint = true;
        }
    }
    if n.is_int {
        n.is_float = true;
        n.float = n.int as f64;
    } else if let Some(u) = u {
        n.is_float = true;
        n.float = u as f64;
    } else if let Some(f) = parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", quote(text)));
        }
        n.is_float = true;
        n.float = f;
        if !n.is_int && f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            n.is_int = true;
            n.int = f as i64;
        }
        if !n.is_uint && f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
            n.is_uint = true;
        }
    }
    if !n.is_int && !n.is_uint && !n.is_float {
        return Err(format!("illegal number syntax: {}", quote(text)));
    }
    Ok(n)
}

/// Go's `underscoreOK`: `_` only between digits, or between a base prefix
/// and a digit.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut saw = b'^';
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let mut hex = false;
    if b.len() >= i + 2 && b[i] == b'0' && matches!(b[i + 1] | 0x20, b'b' | b'o' | b'x') {
        hex = (b[i + 1] | 0x20) == b'x';
        i += 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && (b'a'..=b'f').contains(&(c | 0x20))) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Splits an optional sign and base prefix (Go's base-0 rules, where a
/// leading `0` means octal) and strips underscores.
fn int_digits(text: &str) -> Option<(bool, u32, String)> {
    if !underscore_ok(text) {
        return None;
    }
    let (neg, body) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    let lower: String = body
        .to_ascii_lowercase()
        .chars()
        .filter(|&c| c != '_')
        .collect();
    let (base, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    if digits.is_empty() {
        return None;
    }
    Some((neg, base, digits))
}

fn parse_uint(text: &str) -> Option<u64> {
    let (neg, base, digits) = int_digits(text)?;
    if neg || text.starts_with('+') {
        return None;
    }
    u64::from_str_radix(&digits, base).ok()
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, base, digits) = int_digits(text)?;
    let mag = u64::from_str_radix(&digits, base).ok()?;
    if neg {
        if mag <= 1u64 << 63 {
            Some((mag as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(mag).ok()
    }
}

/// Go's `strconv.ParseFloat` for the literals the lexer accepts: decimal
/// with exponent, or hexadecimal mantissa with binary exponent.
fn parse_float(text: &str) -> Option<f64> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(hex) = lower.strip_prefix("0x") {
        if !underscore_ok(text) {
            return None;
        }
        let hex: String = hex.chars().filter(|&c| c != '_').collect();
        let (mant, exp) = hex.split_once('p')?;
        let mant = mant.to_string();
        let (int, frac) = mant.split_once('.').unwrap_or((&mant, ""));
        let mut m = 0f64;
        for c in int.chars().chain(frac.chars()) {
            m = m * 16.0 + f64::from(c.to_digit(16)?);
        }
        let e: i32 = exp.parse().ok()?;
        m * 2f64.powi(e - 4 * frac.len() as i32)
    } else {
        if !underscore_ok(text) {
            return None;
        }
        let clean: String = lower.chars().filter(|&c| c != '_').collect();
        if clean.is_empty() || clean.contains("inf") || clean.contains("nan") {
            return None;
        }
        clean.parse::<f64>().ok()?
    };
    if v.is_infinite() {
        return None;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<HashMap<String, Tree>, TemplateError> {
        parse("t", text, &|n| n == "f")
    }

    fn err(text: &str) -> String {
        match p(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("parsed: {text}"),
        }
    }

    #[test]
    fn round_trips_like_go_string() {
        let trees =
            p("{{if .a}}x{{else if .b}}y{{end}}{{range $i, $v := .l}}{{$v}}{{end}}").unwrap();
        assert_eq!(
            trees["t"].root.to_string(),
            "{{if .a}}x{{else}}{{if .b}}y{{end}}{{end}}{{range $i, $v := .l}}{{$v}}{{end}}"
        );
    }

    #[test]
    fn errors_match_go() {
        assert_eq!(err("{{"), "template: t:1: unclosed action");
        assert_eq!(err("{{end}}"), "template: t:1: unexpected {{end}}");
        assert_eq!(
            err("{{nofunc}}"),
            "template: t:1: function \"nofunc\" not defined"
        );
        assert_eq!(err("{{$x}}"), "template: t:1: undefined variable \"$x\"");
        assert_eq!(
            err("{{break}}"),
            "template: t:1: {{break}} outside {{range}}"
        );
        assert_eq!(
            err("\n{{if}}{{end}}"),
            "template: t:2: missing value for if"
        );
        assert_eq!(
            err("{{.a | 1}}"),
            "template: t:1: non executable command in pipeline stage 2"
        );
    }

    #[test]
    fn numbers() {
        let n = parse_number("0x1F", ItemType::Number).unwrap();
        assert!(n.is_int && n.int == 31);
        let n = parse_number("1_000", ItemType::Number).unwrap();
        assert_eq!(n.int, 1000);
        let n = parse_number("1e3", ItemType::Number).unwrap();
        assert!(n.is_float && n.is_int && n.int == 1000);
        let n = parse_number("'a'", ItemType::CharConstant).unwrap();
        assert_eq!(n.int, 97);
        assert!(parse_number("08", ItemType::Number).is_err());
    }

    #[test]
    fn locations_are_go_columns() {
        let trees = p("ab\ncd{{.x}}").unwrap();
        assert_eq!(trees["t"].location(5), "t:2:2");
        assert_eq!(trees["t"].location(1), "t:1:1");
    }
}
