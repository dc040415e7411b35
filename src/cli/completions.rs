//! `orchestrator completions SHELL` and `orchestrator man`: the shell
//! completion script and the man page, generated from the same clap
//! definitions the parser uses, so they can never disagree with it.

use std::io::Write;

use clap::CommandFactory;

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the completion script for `args.shell` on stdout.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    // clap_complete panics when its writer fails (a full disk, a closed
    // pipe): it writes into memory, and the one write to stdout reports.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "orchestrator", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

/// Print the man page (roff) on stdout.
pub fn man() -> anyhow::Result<()> {
    let page = clap_mangen::Man::new(Cli::command());
    let mut out = std::io::stdout().lock();
    page.render(&mut out)?;
    out.flush()?;
    Ok(())
}
