//! The `gatehouse` command: the server (`serve`) and the CLI that talks to it.

mod cli;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

pub fn run() -> ExitCode {
    let args = cli::Cli::parse();
    gatehouse_identity::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
