//! The `orchestrator` binary: parse, dispatch, print the error chain, exit.
//! This is the only place the process exits.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use orchestrator::error::exit;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // A closed pipe (`orchestrator runs list | head`) is not an error.
            if is_broken_pipe(&err) {
                return ExitCode::from(exit::SUCCESS);
            }
            report(&err);
            ExitCode::from(exit_code(&err))
        }
    }
}

/// `error: …`, one `caused by: …` per source, then `hint: …` when the core
/// knows a next step. Never the Debug form of an error.
fn report(err: &anyhow::Error) {
    let mut chain = err.chain();
    if let Some(top) = chain.next() {
        eprintln!("error: {top}");
    }
    let mut previous = String::new();
    for cause in chain {
        let text = cause.to_string();
        // SQLite's errors carry their text twice: as the message and as the
        // description of the code underneath ("Error code 26: <same>").
        if text != previous && !text.ends_with(&format!(": {previous}")) {
            eprintln!("  caused by: {text}");
        }
        previous = text;
    }
    if let Some(hint) = core_error(err).and_then(|e| e.hint()) {
        eprintln!("hint: {hint}");
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(BrokenPipe))
    })
}

fn core_error(err: &anyhow::Error) -> Option<&orchestrator::Error> {
    err.chain()
        .find_map(|c| c.downcast_ref::<orchestrator::Error>())
}

fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(e) = core_error(err) {
        return e.exit_code();
    }
    if err
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some())
    {
        return exit::IO;
    }
    exit::PROBLEM
}
