//! `medgrain mock-server`: a local Chat Completions server.

use crate::cli::*;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(args: MockServerArgs) -> Result<ExitCode, CliError> {
    let MockServerArgs {
        port,
        model,
        latency_ms,
        faults,
        stall_ms,
        require_key_env,
    } = args;
    let api_key = match require_key_env {
        Some(var) => {
            Some(std::env::var(&var).map_err(|_| CliError::Usage(format!("--require-key-env: ${var} is not set")))?)
        }
        None => None,
    };
    let opts = medgrain_generate::openai::mock::MockOptions {
        model,
        api_key,
        latency: std::time::Duration::from_millis(latency_ms),
        faults,
        stall: std::time::Duration::from_millis(stall_ms),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| CliError::Usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| CliError::Internal(e.to_string()))?;
        outln!(
            "mock server listening on http://{addr}/v1 (model {:?}; statistics at GET /v1/stats)",
            opts.model
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let stats = std::sync::Arc::new(medgrain_generate::openai::mock::MockStats::default());
        medgrain_generate::openai::mock::serve(listener, opts, stats).await;
        Ok::<(), CliError>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
