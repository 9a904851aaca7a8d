//! underlay's CNI plugin. One binary, two roles chosen by the name it is run under:
//! `underlay-ipam` serves only addresses (under the reference macvlan/ipvlan plugins, like
//! host-local); any other name (`underlay`, `underlay-cni`) is the main plugin, which makes the
//! container's macvlan/ipvlan interface with its addresses and routes, serving an
//! `underlay-ipam` or `host-local` `ipam` block in-process and running any other `ipam.type`
//! by exec. `underlay-cni install DIR` puts
//! both names into a CNI bin dir. See docs/cni.md.
//!
//! Answers go to stdout (the spec's JSON), logs to stderr. No panic reaches the runtime: it
//! becomes the spec's error object.

mod config;
mod delegate;
mod dhcp;
mod etcd;
mod install;
mod log;
mod plugin;
mod protocol;
mod renewer;

use std::io::{Read, Write};
use std::process::ExitCode;

use plugin::Role;
use protocol::{code, CniError, Env};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("install") {
        return install::run(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some(renewer::COMMAND) {
        return renewer::run(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("--version") {
        println!(
            "underlay CNI plugin {} (CNI {})",
            underlay::VERSION,
            protocol::SUPPORTED_VERSIONS.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    let argv0 = args.first().map(String::as_str).unwrap_or("underlay");
    let role = if std::path::Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        == Some("underlay-ipam")
    {
        Role::Ipam
    } else {
        Role::Main
    };
    // The default hook prints the panic to stderr, which is where logs go.
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .read_to_end(&mut stdin)
        .map(|_| ())
        .map_err(|e| {
            CniError::new(code::IO_FAILURE, "cannot read the configuration from stdin")
                .details(e.to_string())
        });
    let outcome = std::panic::catch_unwind(|| {
        read?;
        // Test hook: proves that a panic reaches the runtime as the spec's error object.
        if std::env::var_os("UNDERLAY_CNI_TEST_PANIC").is_some() {
            panic!("UNDERLAY_CNI_TEST_PANIC is set");
        }
        plugin::run(role, &env, &stdin)
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(CniError::new(
                code::INTERNAL,
                "internal error in the underlay plugin (a bug: please report it)",
            )
            .details(what))
        }
    };
    if let Some(path) = log::log_file(&stdin) {
        log::append(&path, &env, outcome.as_ref().map(|_| ()));
    }
    let (answer, status) = match outcome {
        Ok(None) => return ExitCode::SUCCESS,
        Ok(Some(v)) => (v, ExitCode::SUCCESS),
        Err(e) => {
            eprintln!(
                "underlay: error {}: {}{}",
                e.code,
                e.msg,
                if e.details.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.details)
                }
            );
            (
                serde_json::to_value(&e).unwrap_or_default(),
                ExitCode::FAILURE,
            )
        }
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, &answer).is_ok()
        && writeln!(out).is_ok()
        && out.flush().is_ok();
    if written {
        status
    } else {
        ExitCode::FAILURE
    }
}
