//! `ctxd service run`: the daemon hosted by the Service Control Manager.
//!
//! The SCM starts the process, which hands control to the service dispatcher; the dispatcher
//! calls [`service_main`] on a thread of its own, which registers the control handler, runs
//! the same daemon as `ctxd serve` on a tokio runtime, and reports each state change:
//! `START_PENDING` until storage is open and the pipe listens, `RUNNING`, `PAUSED` while the
//! data directory is released for the SCM, and `STOP_PENDING` with a checkpoint that rises every
//! second while the shutdown sequence drains and closes, then `STOPPED`.

use super::{RunArgs, SERVICE_NAME, SERVICE_PIPE, default_data_dir, program_data};
use crate::config::ServeConfig;
use crate::error::Error;
use crate::exit;
use crate::lifecycle;
use crate::shared::Shared;
use crate::shutdown::{Reason, Shutdown};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::{define_windows_service, service_dispatcher};

/// The lease holder a pause shows in `ctxd status`.
const PAUSE_HOLDER: &str = "scm";

/// How long a pause lasts at most: the longest lease the protocol grants. A forgotten pause
/// ends by itself (the data directory reopens) rather than keeping the service down forever.
const PAUSE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the dispatcher thread needs: fixed before the dispatcher starts.
static CONFIG: OnceLock<ServeConfig> = OnceLock::new();

/// Whether the hosted daemon failed (the process's exit code).
static FAILED: AtomicBool = AtomicBool::new(false);

define_windows_service!(ffi_service_main, service_main);

/// `ctxd service run`: sets up logging and hands the thread to the service dispatcher, which
/// returns when the service has stopped.
pub(super) fn run(socket: Option<PathBuf>, args: RunArgs) -> ExitCode {
    let log_file = args
        .log_file
        .unwrap_or_else(|| program_data().join("ctxd.log"));
    if let Err(e) = init_logging(&log_file, &args.log_level) {
        eprintln!("ctxd: cannot open the log {}: {e}", log_file.display());
        return ExitCode::from(exit::FAILED);
    }
    let mut config = ServeConfig::resolve(
        Some(args.data.unwrap_or_else(default_data_dir)),
        Some(socket.unwrap_or_else(|| PathBuf::from(SERVICE_PIPE))),
    );
    config.drain_timeout = args.drain_timeout;
    let _ = CONFIG.set(config);
    if let Err(e) = service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        // Error 1063 when started from a console rather than by the SCM.
        eprintln!(
            "ctxd: `ctxd service run` is started by the Service Control Manager ({e}); \
             in a console, run `ctxd serve`"
        );
        return ExitCode::from(exit::FAILED);
    }
    if FAILED.load(Ordering::SeqCst) {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::from(exit::OK)
    }
}

/// The log goes to a file: a service has no console.
fn init_logging(path: &std::path::Path, level: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .init();
    Ok(())
}

/// Called by the dispatcher on its own thread; returns when the service has stopped.
fn service_main(_arguments: Vec<OsString>) {
    let Some(config) = CONFIG.get().cloned() else {
        return;
    };
    if let Err(e) = host(config) {
        tracing::error!("service: {e}");
        FAILED.store(true, Ordering::SeqCst);
    }
}

/// What the control handler forwards to the running daemon.
#[derive(Debug, Clone, Copy)]
enum Control {
    Pause,
    Continue,
}

fn host(config: ServeConfig) -> Result<(), String> {
    let shutdown = Shutdown::new();
    let (controls, control_receiver) = mpsc::unbounded_channel();
    let stopper = shutdown.clone();
    // The handler runs on the SCM's thread and must return at once: it only signals.
    let handler = move |control| match control {
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            stopper.trigger(Reason::Terminate);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Pause => {
            let _ = controls.send(Control::Pause);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Continue => {
            let _ = controls.send(Control::Continue);
            ServiceControlHandlerResult::NoError
        }
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(SERVICE_NAME, handler)
        .map_err(|e| format!("cannot register the control handler: {e}"))?;
    let reporter = Reporter::new(handle);
    // Opening storage replays the redo journal; give the SCM a generous hint.
    reporter.report(ServiceState::StartPending, Duration::from_secs(60));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ctxd-worker")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let drain = config.drain_timeout;
    let result = runtime.block_on(async {
        let ticker = reporter.clone();
        let watched = shutdown.clone();
        tokio::spawn(async move {
            watched.triggered().await;
            // Checkpoints rise while the shutdown sequence drains and closes; the hint covers
            // the drain bound plus closing storage.
            loop {
                ticker.report(ServiceState::StopPending, drain + Duration::from_secs(10));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let serving_reporter = reporter.clone();
        crate::daemon::run_hosted(config, shutdown, move |shared| {
            serving_reporter.report(ServiceState::Running, Duration::ZERO);
            tokio::spawn(pauses(
                Arc::clone(shared),
                control_receiver,
                serving_reporter.clone(),
            ));
        })
        .await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    reporter.stopped(
        result
            .as_ref()
            .err()
            .map(crate::daemon::DaemonError::exit_code),
    );
    result.map_err(|e| e.to_string())
}

/// Pause → release under the `scm` lease; continue → end it. Runs until the daemon stops.
async fn pauses(
    shared: Arc<Shared>,
    mut controls: mpsc::UnboundedReceiver<Control>,
    reporter: Reporter,
) {
    let mut lease: Option<String> = None;
    while let Some(control) = controls.recv().await {
        if shared.shutdown.is_triggered() {
            return;
        }
        match control {
            Control::Pause if lease.is_some() => {
                reporter.report(ServiceState::Paused, Duration::ZERO)
            }
            Control::Pause => {
                reporter.report(ServiceState::PausePending, lifecycle::DEFAULT_DRAIN);
                let released = shared
                    .lifecycle
                    .release(
                        Some(PAUSE_HOLDER.to_owned()),
                        PAUSE_TTL,
                        lifecycle::DEFAULT_DRAIN,
                    )
                    .await;
                match released {
                    Ok(released) => {
                        lease = Some(released.lease.lease_id);
                        reporter.report(ServiceState::Paused, Duration::ZERO);
                    }
                    Err(e) => {
                        tracing::warn!("pause: cannot release the data directory: {e}");
                        reporter.report(ServiceState::Running, Duration::ZERO);
                    }
                }
            }
            Control::Continue => {
                reporter.report(ServiceState::ContinuePending, Duration::from_secs(30));
                if let Some(id) = lease.take() {
                    let resumed = shared.lifecycle.resume(Some(&id), false).await;
                    match resumed {
                        // Expired, or ended by `ctxd resume --all`: nothing left to end.
                        Ok(_) | Err(Error::LeaseNotFound(_)) => {}
                        Err(e) => tracing::warn!("continue: {e}"),
                    }
                }
                reporter.report(ServiceState::Running, Duration::ZERO);
            }
        }
    }
}

/// Reports the service's state to the SCM: a rising checkpoint for pending states, and
/// nothing but `STOP_PENDING` / `STOPPED` once stopping has started (a pause finishing late
/// must not announce `RUNNING` during shutdown).
#[derive(Clone)]
struct Reporter {
    handle: ServiceStatusHandle,
    checkpoint: Arc<AtomicU32>,
    stopping: Arc<AtomicBool>,
}

impl Reporter {
    fn new(handle: ServiceStatusHandle) -> Reporter {
        Reporter {
            handle,
            checkpoint: Arc::new(AtomicU32::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    fn report(&self, state: ServiceState, wait_hint: Duration) {
        if state == ServiceState::StopPending {
            self.stopping.store(true, Ordering::SeqCst);
        } else if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        self.send(state, wait_hint, ServiceExitCode::Win32(0));
    }

    /// `STOPPED`, with the daemon's exit status as the service-specific code when it failed
    /// (`crate::exit`: 1, or 4 for a full disk at close).
    fn stopped(&self, failure: Option<u8>) {
        self.stopping.store(true, Ordering::SeqCst);
        let code = match failure {
            Some(status) => ServiceExitCode::ServiceSpecific(u32::from(status)),
            None => ServiceExitCode::Win32(0),
        };
        self.send(ServiceState::Stopped, Duration::ZERO, code);
    }

    fn send(&self, state: ServiceState, wait_hint: Duration, exit_code: ServiceExitCode) {
        let pending = matches!(
            state,
            ServiceState::StartPending
                | ServiceState::StopPending
                | ServiceState::PausePending
                | ServiceState::ContinuePending
        );
        let checkpoint = if pending {
            self.checkpoint.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.checkpoint.store(0, Ordering::SeqCst);
            0
        };
        let controls_accepted = match state {
            ServiceState::Running | ServiceState::Paused => {
                ServiceControlAccept::STOP
                    | ServiceControlAccept::SHUTDOWN
                    | ServiceControlAccept::PAUSE_CONTINUE
            }
            ServiceState::PausePending | ServiceState::ContinuePending => {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            }
            _ => ServiceControlAccept::empty(),
        };
        let status = ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted,
            exit_code,
            checkpoint,
            wait_hint,
            process_id: None,
        };
        if let Err(e) = self.handle.set_service_status(status) {
            tracing::warn!("cannot report {state:?} to the SCM: {e}");
        }
    }
}
