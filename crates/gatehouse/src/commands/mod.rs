//! One function per command.

mod admin;
mod agents;
mod reviews;
mod serve;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Login(args) => admin::login(args).await,
        Command::Whoami(j) => admin::whoami(j.json).await,
        Command::Tokens(cmd) => admin::tokens(cmd).await,
        Command::Connections(cmd) => admin::connections(cmd).await,
        Command::Apply(args) => admin::apply(args).await,
        Command::Keys(cmd) => admin::keys(cmd).await,
        Command::Audit(cmd) => admin::audit(cmd).await,
        Command::Sessions(cmd) => admin::sessions(cmd).await,
        Command::Policy(cmd) => admin::policy(cmd).await,
        Command::Reviews(cmd) => reviews::reviews(cmd).await,
        Command::Access(cmd) => reviews::access(cmd).await,
        Command::Exec(args) => agents::exec(args).await,
        Command::Connect { connection, args } => agents::connect(&connection, &args).await,
        Command::Mcp => agents::mcp().await,
    }
}
