//! `waybill`: command-line entry point. Data goes to stdout, everything else to stderr.

mod cli;

/// mimalloc instead of glibc's malloc: the request path allocates and frees many small
/// objects per event (headers, the parsed payload, jq values, the canonical event), and
/// glibc's allocator took ~15 % of the HTTP workers' time. Measured in BENCHMARKS.md
/// ("Allocator"): −14 % CPU in the HTTP workers, +5 % events/s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
