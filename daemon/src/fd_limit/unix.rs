//! Unix: `RLIMIT_NOFILE`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The most the soft limit is raised to, even when the hard limit is higher or unlimited (a
/// kernel refuses more than its `nr_open`, 1,048,576 by default).
const CEILING: u64 = 1 << 20;

/// Raises the soft open-file limit to the hard one and returns the soft limit now in force
/// (`None` if it is unlimited).
pub fn raise() -> Option<u64> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let target = maximum.map_or(CEILING, |hard| hard.min(CEILING));
    if current.is_some_and(|soft| soft < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::debug!(from = current, to = target, "raised the open-file limit"),
            Err(e) => tracing::warn!("cannot raise the open-file limit to {target}: {e}"),
        }
    }
    getrlimit(Resource::Nofile).current
}
