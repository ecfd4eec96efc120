//! The `medgrain` command line: the grammar ([`cli`]), one module per command ([`commands`]), the binary's error
//! type and exit codes ([`error`]), logging. All work happens in the library crates.

/// `println!` for results on stdout: a reader that went away (`medgrain … | head`) ends the process quietly with
/// exit 0, as `grep` or `rg` would, instead of a panic; another write error is reported and exits 1. SIGPIPE is not
/// reset to its default instead: the review server and the model client write to sockets.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(e)
        }
    }};
}

/// Ends the process after a failed write to stdout (see [`outln!`]).
pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0)
    }
    eprintln!("error: writing to stdout: {e}");
    std::process::exit(1)
}

mod cli;
mod commands;
mod error;
mod output;

use clap::Parser;
use cli::{Cli, Command};
use std::io::IsTerminal;
use std::process::ExitCode;

/// mimalloc keeps freed pages for reuse: per-sample buffers (decoded pixels, label maps) then cost no page faults.
/// Measured in BENCHMARKS.md ("Triplet path against a Python reference").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(quiet: bool) {
    let default = if quiet { "error" } else { "info,tantivy=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDGRAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .compact()
        .init();
}

/// SIGTERM (Slurm's preemption and time limit, Kubernetes' eviction) stops a long command with exit 3, worth
/// retrying: every file is written under a temporary name and renamed, so what is on disk is finished work that the
/// next run keeps, exactly as after SIGKILL. The handler only writes a line and calls `_exit` (both
/// async-signal-safe).
fn exit_3_on_sigterm() {
    extern "C" fn on_sigterm(_: libc::c_int) {
        const MSG: &[u8] =
            b"medgrain: stopped by SIGTERM (exit 3): finished shards are kept; run the same command again to go on\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a static buffer.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(3);
        }
    }
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    unsafe {
        libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t);
    }
}

fn run(cli: Cli) -> Result<ExitCode, error::CliError> {
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    if matches!(
        cli.command,
        Command::Demo(_) | Command::Build(_) | Command::Merge(_) | Command::Plan(_)
    ) {
        exit_3_on_sigterm();
    }
    match cli.command {
        Command::Synth(a) => commands::synth::run(a),
        Command::Demo(a) => commands::demo::run(a, progress),
        Command::Build(a) => commands::build::run(a, progress),
        Command::Plan(a) => commands::plan::plan(a),
        Command::Merge(a) => commands::plan::merge(a),
        Command::Status(a) => commands::plan::status(a),
        Command::K8s(a) => commands::plan::k8s(a),
        Command::Slurm(a) => commands::plan::slurm(a),
        Command::Batch { action } => commands::batch::run(action),
        Command::MockServer(a) => commands::mock_server::run(a),
        Command::Probe(a) => commands::probe::run(a),
        Command::Render(a) => commands::render::run(a),
        Command::Reorient(a) => commands::reorient::run(a),
        Command::Locate(a) => commands::locate::run(a),
        Command::Rois(a) => commands::rois::run(a),
        Command::Kb { action } => commands::kb::run(action, cli.quiet),
        Command::Report { action } => commands::report::run(action),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Deid(a) => commands::deid::run(a),
        Command::Review(a) => commands::review::run(a),
        Command::Eval { action } => commands::eval::run(action),
        Command::Export(a) => commands::export::run(a),
        Command::Dedup(a) => commands::dedup::run(a),
        Command::Phash(a) => commands::dedup::phash(a),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            let err = anyhow::Error::new(e);
            eprintln!("medgrain: error: {err:#}");
            ExitCode::from(code)
        }
    }
}
