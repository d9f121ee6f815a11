//! `losskit`: list, explain and evaluate the losses of the losskit library from the shell.
//!
//! The `list`, `explain` and `eval` sub-commands are the machine contract of CLI.md; `demo`
//! runs every loss on the sample data shipped in the repository; `bench` times them.

mod bench;
mod demo;
mod eval;
mod explain;
mod json;
mod list;
mod npy;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "losskit", version, about = "Loss functions exact against PyTorch, Keras and optax, with gradients")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the implemented losses (`ID  FAMILY  SUMMARY`), or their metadata as JSON.
    List {
        /// Print a JSON array of every loss's id, family, reference, arguments and options.
        #[arg(long)]
        json: bool,
    },
    /// Explains one loss: formula, reference, arguments, options, conventions and traps.
    Explain {
        /// The loss id (e.g. cross_entropy).
        id: String,
    },
    /// Evaluates one loss on .npy arguments; prints one JSON object.
    Eval(eval::EvalArgs),
    /// Runs every loss on the sample data in samples/ and prints a table of values and
    /// gradient norms.
    Demo(demo::DemoArgs),
    /// Times every loss in-process (medians after warm-up; fwd, fwd_bwd, fwd_bwd_into) and,
    /// with --stream, probes the memory bandwidth; prints a table, optionally JSON records.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // one line: clap's first line, which already starts with "error:"
            let text = e.render().to_string();
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("error: invalid command line");
            eprintln!("{}", line.trim_end());
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::List { json } => list::run(json),
        Command::Explain { id } => explain::run(&id),
        Command::Eval(args) => eval::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(text) => {
            // a closed pipe (`losskit list | head`) is not an error of ours
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write to stdout: {e}");
                    ExitCode::from(2)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(msg) => {
            // the contract: exactly one line on stderr
            let one = msg.replace('\n', " ");
            eprintln!("error: {one}");
            ExitCode::from(2)
        }
    }
}
