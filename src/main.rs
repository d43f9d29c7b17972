//! The `watchpost` command line: `run` (the default), `check config`,
//! `check rules`, `test rules`, `rules backtest`, `notify routes`, `notify
//! test`, `report send` and `report show`.
//!
//! Flag names are Prometheus's, so habits and scripts carry over. Raw
//! arguments become validated options here; `anyhow` is used only in this
//! file, and an error is printed once as `watchpost: {err:#}`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use watchpost::app;
use watchpost::config::notify::NotifyConfig;
use watchpost::notify::tool;
use watchpost::storage::WalSync;
use watchpost::telemetry::{LogFormat, LogLevel};

const DEFAULT_CONFIG: &str = "config/watchpost.yml";

#[derive(Parser, Debug)]
#[command(
    name = "watchpost",
    version = watchpost::VERSION,
    about = "Scrapes Prometheus targets, evaluates alerting rules and delivers alerts, in one process",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run watchpost (the default when no subcommand is given).
    Run(RunArgs),
    /// Check configuration files without running anything.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run unit tests.
    #[command(subcommand)]
    Test(TestCommand),
    /// Ask the notification config: where an alert goes, whether a
    /// receiver delivers.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Make a digest report (`reports:`) now, from the data of a running
    /// watchpost: send it, or print it.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Ask a running watchpost about its alerting rules.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Replay an alerting rule over a running watchpost's stored history
    /// and print when it would have fired and resolved, for each `for`
    /// value.
    Backtest(BacktestArgs),
}

#[derive(Args, Debug)]
struct BacktestArgs {
    /// The alerting rule (its `alert:` name).
    #[arg(long, value_name = "NAME")]
    rule: String,
    /// The rule's group, when several groups have a rule of that name.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// `for` values to compare, comma separated (default: the rule's own).
    #[arg(long = "for", value_name = "DURATIONS", value_delimiter = ',', value_parser = parse_duration)]
    fors: Vec<std::time::Duration>,
    /// Start of the replay: RFC 3339, Unix seconds, `now` or `now-7d`.
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    from: f64,
    /// End of the replay, in the same forms.
    #[arg(long, value_name = "TIME", default_value = "now", value_parser = parse_time_arg)]
    to: f64,
    /// Time between evaluations (default: the group's interval).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    step: Option<std::time::Duration>,
    /// Take the rule from this rule file instead of the running ones, to
    /// try a rule before deploying it.
    #[arg(long = "rule-file", value_name = "FILE")]
    rule_file: Option<PathBuf>,
    /// The running watchpost whose history is replayed (with web config
    /// basic auth: http://user:password@host:port).
    #[arg(
        long = "web.url",
        value_name = "URL",
        default_value = "http://127.0.0.1:9464"
    )]
    url: String,
    /// Longest wait for the answer.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// Print the API's JSON answer instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// Make the report now and send it through every email and Telegram
    /// integration of its receiver once; prints each outcome, exits 1 if
    /// any failed.
    Send {
        #[command(flatten)]
        source: ReportSource,
        /// The report's name.
        name: String,
    },
    /// Make the report now and print its text version.
    Show {
        #[command(flatten)]
        source: ReportSource,
        /// The report's name.
        name: String,
    },
}

/// Where a report's config and data come from.
#[derive(Args, Debug, Clone)]
struct ReportSource {
    /// watchpost configuration file with the `reports:` section (default
    /// config/watchpost.yml).
    #[arg(long = "config.file", alias = "config", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// The running watchpost whose data the report is made from (its
    /// Prometheus API); the command does not open the storage directory,
    /// which that watchpost owns.
    #[arg(
        long = "web.url",
        value_name = "URL",
        default_value = "http://127.0.0.1:9464"
    )]
    url: String,
    /// Longest wait for each query (each send has the channels' 30s).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    timeout: std::time::Duration,
}

#[derive(Subcommand, Debug)]
enum NotifyCommand {
    /// Print the receivers an alert with these labels reaches, comma
    /// separated (as `amtool config routes test`); exits 1 when
    /// --verify.receivers is given and differs.
    Routes {
        #[command(flatten)]
        source: NotifySource,
        /// The alert's labels: `alertname=Down,team=db`.
        #[arg(long, value_name = "LABELS")]
        labels: String,
        /// The receivers expected, comma separated.
        #[arg(long = "verify.receivers", value_name = "RECEIVERS")]
        verify_receivers: Option<String>,
        /// Also print each matching route's path and ID.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Send a sample notification through every integration of RECEIVER
    /// once and print each outcome; exits 1 if any failed.
    Test {
        #[command(flatten)]
        source: NotifySource,
        /// The receiver's name.
        receiver: String,
        /// Longest wait for each integration's answer.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// External URL shown in the notification's links.
        #[arg(long = "web.external-url", value_name = "URL", default_value = "")]
        external_url: String,
    },
}

/// Where the notification config comes from.
#[derive(Args, Debug, Clone)]
struct NotifySource {
    /// watchpost configuration file whose `notify:` section or
    /// `notify_file:` is used (default config/watchpost.yml).
    #[arg(
        long = "config.file",
        value_name = "FILE",
        conflicts_with = "notify_file"
    )]
    config_file: Option<PathBuf>,
    /// An alertmanager.yml to use instead.
    #[arg(long = "notify.file", value_name = "FILE")]
    notify_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum TestCommand {
    /// Run rule unit tests in promtool's format; exits 1 if any fails.
    Rules {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only run test groups whose name matches this regular expression
        /// (repeatable; unanchored).
        #[arg(long = "run", value_name = "REGEX")]
        run: Vec<String>,
        /// Accept keys in rule files that Prometheus does not know.
        #[arg(long = "ignore-unknown-fields")]
        ignore_unknown_fields: bool,
    },
}

/// Linting of `check rules` (promtool's `--lint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Lint {
    /// Report rules recorded (or alerts defined) twice with the same labels.
    DuplicateRules,
    None,
}

#[derive(Subcommand, Debug)]
enum CheckCommand {
    /// Validate watchpost.yml files; prints every error and exits 1 if any.
    Config {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate Prometheus rule files; prints every error and exits 1 if any.
    Rules {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Lint checks to run.
        #[arg(long, value_enum, default_value = "duplicate-rules")]
        lint: Lint,
        /// Exit with 3 when a lint check finds something.
        #[arg(long = "lint-fatal")]
        lint_fatal: bool,
        /// Accept keys Prometheus does not know.
        #[arg(long = "ignore-unknown-fields")]
        ignore_unknown_fields: bool,
    },
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// watchpost configuration file (prometheus.yml shape). Without this
    /// flag, config/watchpost.yml is used, or the embedded default if that
    /// file does not exist.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Address to listen on for the UI, API and /metrics.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "127.0.0.1:9464"
    )]
    listen_address: String,
    /// Base path for stored data.
    #[arg(
        long = "storage.path",
        alias = "storage.tsdb.path",
        value_name = "DIR",
        default_value = "./data"
    )]
    storage_path: PathBuf,
    /// When written samples reach the disk: `always` (fsync every commit),
    /// a period such as `1s` (fsync at most that much later; a crash of the
    /// process alone loses nothing either way), or `never` (leave it to the
    /// operating system).
    #[arg(long = "storage.wal-sync", value_name = "POLICY", default_value = "1s", value_parser = parse_wal_sync)]
    wal_sync: WalSync,
    /// Refuse to start when the WAL is corrupt in the middle, instead of
    /// keeping everything before the damage and starting.
    #[arg(long = "storage.refuse-on-corruption")]
    refuse_on_corruption: bool,
    /// How far back an instant selector looks for a sample.
    #[arg(long = "query.lookback-delta", value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    query_lookback_delta: std::time::Duration,
    /// Longest a query may run.
    #[arg(long = "query.timeout", value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    query_timeout: std::time::Duration,
    /// Most samples a single query may hold in memory.
    #[arg(
        long = "query.max-samples",
        value_name = "N",
        default_value_t = 50_000_000
    )]
    query_max_samples: usize,
    /// Most queries running at once; further queries wait.
    #[arg(long = "query.max-concurrency", value_name = "N", default_value_t = 20)]
    query_max_concurrency: usize,
    /// Prometheus web config file: TLS and basic auth for the HTTP server.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// Accept Prometheus remote write on /api/v1/write, as Prometheus's flag
    /// of the same name (same as `push: {remote_write: true}` in the config).
    #[arg(long = "web.enable-remote-write-receiver")]
    enable_remote_write_receiver: bool,
    /// Only log messages at or above this level.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    log_level: LogLevel,
    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check(CheckCommand::Config { files })) => return check_config(&files),
        Some(Command::Notify(cmd)) => return notify(cmd),
        Some(Command::Report(cmd)) => return report(cmd),
        Some(Command::Rules(RulesCommand::Backtest(args))) => backtest(args),
        Some(Command::Check(CheckCommand::Rules {
            files,
            lint,
            lint_fatal,
            ignore_unknown_fields,
        })) => return check_rules(&files, lint, lint_fatal, ignore_unknown_fields),
        Some(Command::Test(TestCommand::Rules {
            files,
            run,
            ignore_unknown_fields,
        })) => return test_rules(&files, run, ignore_unknown_fields),
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("watchpost: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        match watchpost::config::load_file(f) {
            // The rule files a config names are checked with it, as
            // Prometheus's `promtool check config` does.
            Ok(cfg) => match watchpost::rules::RuleManager::load_files(&cfg.rule_files) {
                Ok(groups) => {
                    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
                    println!("{}: ok", f.display());
                    if !cfg.rule_files.is_empty() {
                        println!("  {} rule groups, {rules} rules", groups.len());
                    }
                }
                Err(e) => {
                    failed = true;
                    for m in e.messages() {
                        eprintln!("{m}");
                    }
                }
            },
            Err(e) => {
                failed = true;
                for m in e.messages() {
                    eprintln!("{m}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn load_notify(source: &NotifySource) -> anyhow::Result<NotifyConfig> {
    if let Some(f) = &source.notify_file {
        return watchpost::config::notify::load_file(f).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let file = source
        .config_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let cfg = watchpost::config::load_file(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.notify.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no notify: section and no notify_file: add one, or name an alertmanager.yml with --notify.file",
            file.display()
        )
    })
}

fn notify(cmd: NotifyCommand) -> ExitCode {
    match notify_inner(cmd) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("watchpost: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// promtool's `check rules`: per file `Checking <file>`, then `  SUCCESS:
/// N rules found` or `  FAILED:` with every error. Exit 1 on errors, 3 on
/// lint findings with `--lint-fatal`.
fn check_rules(files: &[PathBuf], lint: Lint, lint_fatal: bool, ignore_unknown: bool) -> ExitCode {
    let opts = watchpost::rules::LoadOptions {
        ignore_unknown_fields: ignore_unknown,
    };
    let mut failed = false;
    let mut lint_found = false;
    for f in files {
        println!("Checking {}", f.display());
        match watchpost::rules::load_paths(std::slice::from_ref(f), opts) {
            Ok(groups) => {
                let dups = if lint == Lint::DuplicateRules {
                    watchpost::rules::duplicate_rules(&groups)
                } else {
                    Vec::new()
                };
                if dups.is_empty() {
                    let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                    println!("  SUCCESS: {n} rules found");
                } else {
                    lint_found = true;
                    eprintln!("  FAILED:");
                    eprintln!("lint error {} duplicate rule(s) found.", dups.len());
                    for (name, labels) in &dups {
                        eprintln!("Metric: {name}");
                        eprintln!("Label(s):");
                        for l in labels {
                            eprintln!("\t{}: {}", l.name, l.value);
                        }
                    }
                    eprintln!("Might cause inconsistency while recording expressions");
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("  FAILED:");
                for m in e.messages() {
                    eprintln!("{m}");
                }
            }
        }
        println!();
    }
    if failed {
        ExitCode::FAILURE
    } else if lint_found && lint_fatal {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// promtool's `test rules`.
fn test_rules(files: &[PathBuf], run: Vec<String>, ignore_unknown_fields: bool) -> ExitCode {
    let opts = watchpost::rules::unittest::TestOptions {
        run,
        ignore_unknown_fields,
    };
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match watchpost::rules::unittest::run_files(files, &opts, &mut out, &mut err) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("watchpost: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a `notify` subcommand; `Ok(false)` when it ran but found a
/// problem (an unexpected route, a failed delivery).
fn notify_inner(cmd: NotifyCommand) -> anyhow::Result<bool> {
    match cmd {
        NotifyCommand::Routes {
            source,
            labels,
            verify_receivers,
            verbose,
        } => {
            let config = load_notify(&source)?;
            let matches = tool::routes(&config, &labels)?;
            let line = tool::receivers_line(&matches);
            println!("{line}");
            if verbose {
                for m in &matches {
                    println!("  {}  {}  id={}", m.receiver, m.path, m.id);
                }
            }
            if let Some(want) = verify_receivers
                && want != line
            {
                eprintln!("WARNING: expected receivers {want:?}, got {line:?}");
                return Ok(false);
            }
            Ok(true)
        }
        NotifyCommand::Test {
            source,
            receiver,
            timeout,
            external_url,
        } => {
            let config = load_notify(&source)?;
            let factory = watchpost::channels::factory(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            // A scheduler-level read of the clock: the sample alert starts now.
            #[allow(clippy::disallowed_methods)]
            let now = watchpost::model::timestamp_of(std::time::SystemTime::now());
            let outcomes = rt.block_on(tool::test_receiver(
                &config,
                &receiver,
                &factory,
                &external_url,
                now,
                timeout,
            ))?;
            if outcomes.is_empty() {
                println!("receiver {receiver:?} has no integrations: nothing was sent");
            }
            for o in &outcomes {
                println!("{o}");
            }
            Ok(outcomes.iter().all(|o| o.result.is_ok()))
        }
    }
}

fn report(cmd: ReportCommand) -> ExitCode {
    match report_inner(cmd) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("watchpost: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a `report` subcommand; `Ok(false)` when a send failed.
fn report_inner(cmd: ReportCommand) -> anyhow::Result<bool> {
    let (source, name, send) = match cmd {
        ReportCommand::Send { source, name } => (source, name, true),
        ReportCommand::Show { source, name } => (source, name, false),
    };
    let file = source
        .config_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let cfg = watchpost::config::load_file(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = watchpost::reports::find(&cfg.reports, &name)?.clone();
    let data = watchpost::reports::HttpSource::new(&source.url, source.timeout)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // A scheduler-level read of the clock: the report's window ends now.
    #[allow(clippy::disallowed_methods)]
    let now = watchpost::model::timestamp_of(std::time::SystemTime::now());
    if !send {
        let (made, _) = rt.block_on(watchpost::reports::make(&data, &report, now))?;
        print!(
            "{}",
            watchpost::reports::render::text(&made, report.location)
        );
        return Ok(true);
    }
    let notify = app::notify_config(&cfg)?;
    let prepared = watchpost::reports::prepare(std::slice::from_ref(&report), &notify)?;
    let metrics = watchpost::telemetry::ReportMetrics::default();
    let mut ok = true;
    for p in &prepared {
        let outcomes = rt.block_on(watchpost::reports::send(&data, p, now, &metrics))?;
        for o in &outcomes {
            println!("{o}");
            ok &= o.result.is_ok();
        }
    }
    Ok(ok)
}

/// Most bytes of a backtest answer read (10,000 listed alerts per `for`
/// value fit several times over).
const MAX_BACKTEST_ANSWER: usize = 256 << 20;

/// Largest rule file sent with `--rule-file`.
const MAX_RULE_FILE: u64 = 1 << 20;

fn backtest(args: BacktestArgs) -> anyhow::Result<()> {
    let shown = watchpost::config::http_client::redact_url(&args.url);
    let mut url = reqwest::Url::parse(&args.url).with_context(|| {
        format!("{shown:?} is not a URL: give the server's address, e.g. http://127.0.0.1:9464")
    })?;
    url.set_path(&format!(
        "{}/api/v1/rules/backtest",
        url.path().trim_end_matches('/')
    ));
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("rule", &args.rule);
    if let Some(g) = &args.group {
        form.append_pair("group", g);
    }
    for f in &args.fors {
        form.append_pair("for", &watchpost::model::format_duration(*f));
    }
    form.append_pair("start", &args.from.to_string());
    form.append_pair("end", &args.to.to_string());
    if let Some(s) = args.step {
        form.append_pair("step", &watchpost::model::format_duration(s));
    }
    if let Some(f) = &args.rule_file {
        let len = std::fs::metadata(f)
            .with_context(|| format!("reading {}", f.display()))?
            .len();
        anyhow::ensure!(
            len <= MAX_RULE_FILE,
            "{}: {len} bytes; a rule file sent for a backtest may have at most {MAX_RULE_FILE}: put the rule in a smaller file",
            f.display()
        );
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        form.append_pair("rule_file", &text);
    }
    let body = form.finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let answer: serde_json::Value = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(args.timeout)
            .build()
            .context("building the HTTP client")?;
        let mut resp = client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("asking {shown}: {}", e.without_url()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            anyhow::bail!(
                "{shown} answered 401 Unauthorized: it requires basic auth (web config); give the user in the URL: http://user:password@host:port"
            );
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer of {shown}: {}", e.without_url()))?
        {
            anyhow::ensure!(
                bytes.len() + chunk.len() <= MAX_BACKTEST_ANSWER,
                "the answer of {shown} is larger than {MAX_BACKTEST_ANSWER} bytes: shorten the range"
            );
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{shown} answered {status} with something that is not watchpost's API ({e}): check --web.url (backtest needs watchpost, not Prometheus)"
            )
        })
    })?;
    if answer["status"] != "success" {
        anyhow::bail!(
            "{}",
            answer["error"].as_str().unwrap_or("the backtest failed")
        );
    }
    if args.json {
        println!("{:#}", answer["data"]);
    } else {
        print!("{}", backtest_text(&answer["data"]));
    }
    Ok(())
}

/// A backtest answer as text: the rule and range, then per `for` value
/// each time an alert fired, resolved, and how long it fired.
fn backtest_text(d: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let secs = |v: &serde_json::Value| {
        watchpost::model::format_duration(std::time::Duration::from_secs_f64(
            v.as_f64().unwrap_or(0.0).max(0.0),
        ))
    };
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let r = &d["rule"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (group {:?} in {}): {}",
        s(&r["name"]),
        s(&r["group"]),
        s(&r["file"]),
        s(&r["query"])
    );
    let _ = writeln!(
        out,
        "replayed {} to {} every {}: {} evaluations, starting with no alerts",
        s(&d["start"]),
        s(&d["end"]),
        s(&d["step"]),
        d["evaluations"]
    );
    if d["failedEvaluations"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            out,
            "{} evaluations failed; the first at {}: {}",
            d["failedEvaluations"],
            s(&d["firstError"]["time"]),
            s(&d["firstError"]["error"])
        );
    }
    for res in d["results"].as_array().into_iter().flatten() {
        out.push('\n');
        let fired = res["fired"].as_u64().unwrap_or(0);
        let _ = write!(out, "for {}: ", s(&res["for"]));
        if fired == 0 {
            out.push_str("never fired");
        } else {
            let _ = write!(
                out,
                "fired {fired} time{}, {} firing in total",
                if fired == 1 { "" } else { "s" },
                secs(&res["firingSeconds"])
            );
        }
        let quiet = res["pendingOnly"].as_u64().unwrap_or(0);
        if quiet > 0 {
            let _ = write!(out, "; {quiet} went pending and cleared without firing");
        }
        let waiting = res["pendingAtEnd"].as_u64().unwrap_or(0);
        if waiting > 0 {
            let _ = write!(out, "; {waiting} still pending at the end");
        }
        out.push('\n');
        for a in res["alerts"].as_array().into_iter().flatten() {
            let resolved = match a["resolvedAt"].as_str() {
                Some(t) => format!("resolved {t}"),
                None => "still firing".to_string(),
            };
            let labels: Vec<String> = a["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or("")))
                .collect();
            let _ = writeln!(
                out,
                "  fired {}  {resolved:<30}  {:>8}  {{{}}}",
                s(&a["firedAt"]),
                secs(&a["firingSeconds"]),
                labels.join(", ")
            );
        }
        if res["unlisted"].as_u64().unwrap_or(0) > 0 {
            let _ = writeln!(out, "  ... and {} more not listed", res["unlisted"]);
        }
    }
    out
}

/// A time argument: RFC 3339, Unix seconds, `now` or `now-<duration>`,
/// as Unix seconds.
fn parse_time_arg(s: &str) -> Result<f64, String> {
    // `now` is the wall clock of the command's start, by definition.
    #[allow(clippy::disallowed_methods)]
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            // Whole seconds: evaluation times read better on the grid.
            .map(|d| d.as_secs() as f64)
            .unwrap_or(0.0)
    };
    if s == "now" {
        return Ok(now());
    }
    if let Some(ago) = s.strip_prefix("now-") {
        let d = watchpost::model::parse_duration(ago)?;
        return Ok(now() - d.as_secs_f64());
    }
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Ok(f);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .map_err(|_| {
            format!(
                "{s:?} is not a time: use RFC 3339 (2026-12-01T00:00:00Z), Unix seconds, now or now-7d"
            )
        })
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    watchpost::telemetry::init_logging(args.log_level, args.log_format);
    let opts = app::Options {
        allow_embedded_default: args.config_file.is_none(),
        config_file: args
            .config_file
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        storage_path: args.storage_path,
        wal_sync: args.wal_sync,
        refuse_on_corruption: args.refuse_on_corruption,
        web_config_file: args.web_config_file,
        enable_remote_write_receiver: args.enable_remote_write_receiver,
        alert_sink: None,
        alert_stream: Default::default(),
        query: watchpost::promql::EngineOptions {
            lookback_delta: args.query_lookback_delta,
            timeout: args.query_timeout,
            max_samples: args.query_max_samples,
            max_concurrent_queries: args.query_max_concurrency,
            ..Default::default()
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen_address)
            .await
            .with_context(|| format!("listening on {}", args.listen_address))?;
        app::run(opts, listener, shutdown_signal()).await?;
        Ok(())
    })
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    watchpost::model::parse_duration(s)
}

fn parse_wal_sync(s: &str) -> Result<WalSync, String> {
    match s {
        "always" => Ok(WalSync::Always),
        "never" => Ok(WalSync::Never),
        d => match watchpost::model::parse_duration(d) {
            Ok(d) if !d.is_zero() => Ok(WalSync::Every(d)),
            _ => Err(format!(
                "{d:?} is not a WAL sync policy: use always, never, or a duration such as 1s"
            )),
        },
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
