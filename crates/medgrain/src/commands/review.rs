//! `medgrain review` (all work in `medgrain_review`): opens the dataset, binds, prints the URL with its token, serves.

use crate::cli::ReviewArgs;
use crate::error::CliError;
use std::io::Read;
use std::process::ExitCode;

/// 128 random bits from the operating system, as hex.
fn token() -> Result<String, CliError> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| CliError::Internal(format!("/dev/urandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub(crate) fn run(a: ReviewArgs) -> Result<ExitCode, CliError> {
    let ip: std::net::IpAddr = a
        .host
        .parse()
        .map_err(|_| CliError::Usage(format!("--host {}: an IP address (e.g. 127.0.0.1)", a.host)))?;
    let token = token()?;
    let reviewer = a
        .reviewer
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "reviewer".into());
    let state = medgrain_review::open(&a.dir, token.clone(), reviewer).map_err(|e| match e {
        medgrain_review::ReviewError::Usage(m) => CliError::Usage(m),
        medgrain_review::ReviewError::Io(m) => CliError::Input(m),
    })?;
    if !ip.is_loopback() {
        eprintln!(
            "medgrain review: WARNING: listening on {ip}, not loopback: anyone who can reach this address and learns \
             the token can read the dataset and record decisions"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((ip, a.port))
            .await
            .map_err(|e| CliError::Usage(format!("cannot listen on {ip}:{}: {e}", a.port)))?;
        let addr = listener.local_addr().map_err(|e| CliError::Internal(e.to_string()))?;
        let host = if ip.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        outln!("medgrain review: http://{host}:{}/?token={token}", addr.port());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        medgrain_review::serve(state, listener)
            .await
            .map_err(|e| CliError::Internal(e.to_string()))
    })?;
    Ok(ExitCode::SUCCESS)
}
