use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Text or JSON logs on stderr, filtered by RUST_LOG (default `info`). Colours only when stderr
/// is a terminal: redirected output and log files get plain text.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let res = if format == "json" { builder.json().try_init() } else { builder.try_init() };
    if let Err(e) = res {
        eprintln!("logging already initialised: {e}");
    }
}
