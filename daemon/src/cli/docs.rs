//! Documentation generated from the command line definition itself, so it cannot drift:
//! shell completion scripts (`ctxd completions SHELL`) and the man page (`ctxd man`).

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::exit;
use clap::CommandFactory;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

/// Prints the completion script for a shell.
pub fn completions(args: &CompletionsArgs) -> ExitCode {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "ctxd", &mut script);
    write_stdout(&script)
}

/// Prints the man page `ctxd(1)` (roff), or with `--dir` writes it and one page per
/// subcommand (`ctxd-serve(1)`, ...; the way git and cargo document theirs) into a directory.
pub fn man(args: &ManArgs) -> ExitCode {
    let result = match &args.dir {
        None => render(Cli::command()).map(|page| write_stdout(&page)),
        Some(dir) => write_pages(dir).map(|()| ExitCode::from(exit::OK)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("ctxd: cannot write the man pages: {e}");
        ExitCode::from(exit::FAILED)
    })
}

/// Writes `ctxd.1` and `ctxd-<subcommand>.1` into `dir` (created if missing).
fn write_pages(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut command = Cli::command();
    command.build();
    std::fs::write(dir.join("ctxd.1"), render(command.clone())?)?;
    for sub in command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        let name = format!("ctxd-{}", sub.get_name());
        let page = render(
            sub.clone()
                .name(name.clone())
                .bin_name(format!("ctxd {}", sub.get_name())),
        )?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
    }
    Ok(())
}

fn render(command: clap::Command) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    Ok(page)
}

/// Writes everything to stdout; a closed pipe (`ctxd man | head`) is not an error worth a
/// message, anything else is.
fn write_stdout(bytes: &[u8]) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("ctxd: cannot write to stdout: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}
