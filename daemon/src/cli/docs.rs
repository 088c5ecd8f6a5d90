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

/// One page. `--help`'s closing text (exit status, environment) becomes proper man sections
/// rather than clap_mangen's reflowed "EXTRA".
fn render(command: clap::Command) -> io::Result<Vec<u8>> {
    let after = command.get_after_long_help().map(ToString::to_string);
    let man = clap_mangen::Man::new(command);
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    if let Some(after) = after {
        for (heading, entries) in sections(&after) {
            let mut roff = roff::Roff::new();
            roff.control("SH", [heading.to_uppercase().as_str()]);
            for (name, text) in entries {
                roff.control("TP", []);
                roff.text([roff::bold(name)]);
                roff.text([roff::roman(text)]);
            }
            roff.to_writer(&mut page)?;
        }
    }
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Splits text shaped like `Heading:` followed by `  NAME   description` lines into sections.
fn sections(text: &str) -> Vec<(&str, Vec<(&str, &str)>)> {
    let mut sections: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_suffix(':').filter(|_| !line.starts_with(' ')) {
            sections.push((heading, Vec::new()));
        } else if let Some((name, description)) = line.trim().split_once("  ")
            && let Some((_, entries)) = sections.last_mut()
        {
            entries.push((name, description.trim()));
        }
    }
    sections
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
