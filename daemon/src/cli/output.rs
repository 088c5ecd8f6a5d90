//! Printing results: human text by default, JSON with `--json`; errors once, on stderr.

use serde::Serialize;
use std::process::ExitCode;

pub use crate::exit;

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print JSON instead of text.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or as the text `human` makes of it.
    pub fn print<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("ctxd: cannot print the result as JSON: {e}"),
            }
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }
}

/// Prints a client error once, with a hint where one helps, and returns its exit code.
pub fn fail(error: &ctxd_client::Error) -> ExitCode {
    eprintln!("ctxd: {error}");
    if let ctxd_client::Error::NotRunning { .. } = error {
        eprintln!(
            "hint: start it with `ctxd serve` (or `systemctl --user start ctxd`), or point \
             --socket / CTXD_SOCKET at the socket of a running daemon"
        );
    }
    error_code(error)
}

/// The exit code for a client error: 3 when the daemon is not reachable, else 1.
pub fn error_code(error: &ctxd_client::Error) -> ExitCode {
    match error {
        ctxd_client::Error::NotRunning { .. } => ExitCode::from(exit::UNREACHABLE),
        _ => ExitCode::from(exit::FAILED),
    }
}

/// Prints a usage error found after parsing (one that involves several arguments) and returns
/// exit code 2.
pub fn usage(command: &str, message: &str) -> ExitCode {
    eprintln!("ctxd: {message}");
    eprintln!("hint: see `ctxd {command} --help`");
    ExitCode::from(exit::USAGE)
}

/// The widest line the human renderings aim for: a typical terminal, not measured, so output
/// is the same in a pipe and in a terminal.
pub const WIDTH: usize = 100;

/// `text` on one line: runs of whitespace (newlines included) become one space, and a text
/// longer than `width` characters is cut to `width` with `…` as its last character.
pub fn one_line(text: &str, width: usize) -> String {
    let mut line = String::with_capacity(text.len().min(width * 4));
    let mut chars = 0;
    for word in text.split_whitespace() {
        if chars > 0 {
            line.push(' ');
            chars += 1;
        }
        line.push_str(word);
        chars += word.chars().count();
        if chars > width {
            break;
        }
    }
    if chars > width {
        line = line.chars().take(width.saturating_sub(1)).collect();
        line.push('…');
    }
    line
}

/// A protocol enum's wire name (`cosine`, `porter`, ...), for text output.
pub fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

/// Left-aligned columns separated by two spaces, with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_whitespace_and_cuts_with_an_ellipsis() {
        assert_eq!(
            one_line("  otters\n hold\thands ", 100),
            "otters hold hands"
        );
        assert_eq!(one_line("abcdef", 6), "abcdef");
        assert_eq!(one_line("abcdefg", 6), "abcde…");
        assert_eq!(one_line("ab cd ef", 5), "ab c…");
        assert_eq!(
            one_line("ééééé", 3).chars().count(),
            3,
            "counts characters, not bytes"
        );
        assert_eq!(one_line("", 10), "");
    }

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["NAME", "COUNT"],
            &[
                vec!["notes".into(), "12".into()],
                vec!["a".into(), "3".into()],
            ],
        );
        assert_eq!(text, "NAME   COUNT\nnotes  12\na      3\n");
    }
}
