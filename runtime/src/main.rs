//! The `husk` binary: parses arguments, calls the library, and reports the
//! outcome as an exit status (1 for husk's own errors, printed once on stderr).

use std::process::ExitCode;

use husk::cli::{self, Command, EarlyExit};

fn main() -> ExitCode {
    match cli::parse(std::env::args_os()) {
        Ok(Command::Version) => {
            println!("{}", cli::version());
            ExitCode::SUCCESS
        }
        Ok(Command::Run(args)) => match husk::run(&args) {
            Ok(status) => ExitCode::from(status),
            Err(error) => fail(&husk::error_chain(&error)),
        },
        Err(EarlyExit::Help(text)) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(EarlyExit::Usage(message)) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("husk: {message}");
    ExitCode::FAILURE
}
