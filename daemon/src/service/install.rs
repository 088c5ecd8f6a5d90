//! Registering and removing the service with the Service Control Manager.

use super::{InstallArgs, SERVICE_NAME, SERVICE_PIPE, StartType, default_data_dir};
use crate::exit;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceErrorControl, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceType,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

/// The environment variable `install --account` reads the account's password from.
const PASSWORD_ENV: &str = "CTXD_SERVICE_PASSWORD";

/// How long `uninstall` waits for a running service to stop (its drain bound and then some).
const STOP_WAIT: Duration = Duration::from_secs(60);

/// `ctxd service install`.
pub(super) fn install(socket: Option<PathBuf>, args: InstallArgs) -> ExitCode {
    match try_install(socket, args) {
        Ok(message) => {
            println!("{message}");
            ExitCode::from(exit::OK)
        }
        Err(message) => {
            eprintln!("ctxd: cannot install the service: {message}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn try_install(socket: Option<PathBuf>, args: InstallArgs) -> Result<String, String> {
    let executable =
        std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let data = args.data.unwrap_or_else(default_data_dir);
    let pipe = socket.unwrap_or_else(|| PathBuf::from(SERVICE_PIPE));
    let launch_arguments: Vec<OsString> = vec![
        "--socket".into(),
        pipe.clone().into_os_string(),
        "service".into(),
        "run".into(),
        "--data".into(),
        data.clone().into_os_string(),
        "--log-level".into(),
        args.log_level.into(),
    ];
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: "ctxd document, full-text and vector store".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: match args.start {
            StartType::Auto => ServiceStartType::AutoStart,
            StartType::Manual => ServiceStartType::OnDemand,
        },
        error_control: ServiceErrorControl::Normal,
        executable_path: executable,
        launch_arguments,
        dependencies: Vec::new(),
        account_name: args.account.clone().map(OsString::from),
        account_password: std::env::var_os(PASSWORD_ENV),
    };
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(|e| format!("{e} (run from an elevated prompt)"))?;
    let service = manager
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS,
        )
        .map_err(|e| format!("{e} (is it installed already? `ctxd service uninstall` first)"))?;
    service
        .set_description(
            "Owns one ctxd data directory and serves it over a named pipe; pause releases the \
             files for backups, continue reopens them.",
        )
        .map_err(|e| e.to_string())?;
    // Restart after a crash (a clean stop is not a failure): storage is crash-safe, and the
    // programs that use the pipe expect it back.
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![
                ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: Duration::from_secs(2),
                },
                ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: Duration::from_secs(10),
                },
                ServiceAction {
                    action_type: ServiceActionType::None,
                    delay: Duration::ZERO,
                },
            ]),
        })
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "installed service `{SERVICE_NAME}`: data {}, pipe {}, account {}\n\
         start it with `sc start {SERVICE_NAME}`; clients use --socket {} (or CTXD_SOCKET)",
        data.display(),
        pipe.display(),
        args.account.as_deref().unwrap_or("LocalSystem"),
        pipe.display(),
    ))
}

/// `ctxd service uninstall`: stops the service (waiting for its shutdown sequence) and deletes it.
pub(super) fn uninstall() -> ExitCode {
    match try_uninstall() {
        Ok(()) => {
            println!("removed service `{SERVICE_NAME}`");
            ExitCode::from(exit::OK)
        }
        Err(message) => {
            eprintln!("ctxd: cannot uninstall the service: {message}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn try_uninstall() -> Result<(), String> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| format!("{e} (run from an elevated prompt)"))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(|e| format!("{e} (is it installed?)"))?;
    let status = service.query_status().map_err(|e| e.to_string())?;
    if status.current_state != ServiceState::Stopped {
        service.stop().map_err(|e| format!("cannot stop it: {e}"))?;
        let deadline = Instant::now() + STOP_WAIT;
        // The SCM has no "wait until stopped" call; polling its status is the documented way.
        while service
            .query_status()
            .map_err(|e| e.to_string())?
            .current_state
            != ServiceState::Stopped
        {
            if Instant::now() >= deadline {
                return Err(format!(
                    "the service did not stop within {} s",
                    STOP_WAIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    service.delete().map_err(|e| e.to_string())
}
