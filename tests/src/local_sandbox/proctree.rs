//! Finding and killing sandbox processes through `/proc`: whole trees (descendants plus process
//! group) for one command, everything carrying a sandbox's environment marker for teardown.
//! Targets are remembered by (pid, start time), so a reused pid is never signalled and a
//! descendant that was reparented away from its tree is still killed.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::Duration;

use tokio::time::{Instant, sleep};

/// How long processes get to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// How long to wait for SIGKILLed processes to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

/// The fields of `/proc/<pid>/stat` this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    state: u8,
    start_time: u64,
}

impl ProcStat {
    /// Parses `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so
    /// fields are counted from the last `)`.
    fn parse(stat: &str) -> Option<Self> {
        let (head, tail) = stat.rsplit_once(')')?;
        let pid = head.split_once('(')?.0.trim().parse().ok()?;
        let fields: Vec<&str> = tail.split_whitespace().collect();
        Some(Self {
            pid,
            state: *fields.first()?.as_bytes().first()?,
            ppid: fields.get(1)?.parse().ok()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    fn read(pid: i32) -> Option<Self> {
        Self::parse(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Running or sleeping, i.e. neither a zombie nor dead.
    fn is_live(&self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }
}

fn all_processes() -> Vec<ProcStat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(ProcStat::read)
        .collect()
}

/// Whether process `pid`'s initial environment contains every `NAME=value` of `vars`.
fn has_env(pid: i32, vars: &[(&str, &str)]) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let entries: HashSet<&[u8]> = environ.split(|byte| *byte == 0).collect();
    vars.iter().all(|(name, value)| {
        let wanted = [name.as_bytes(), b"=", value.as_bytes()].concat();
        entries.contains(wanted.as_slice())
    })
}

/// Live processes whose environment contains every `NAME=value` of `vars`; this is how leaked
/// sandbox processes are found, as every one of them inherits the server's markers.
pub fn processes_with_env(vars: &[(&str, &str)]) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|stat| stat.is_live() && has_env(stat.pid, vars))
        .filter_map(|stat| u32::try_from(stat.pid).ok())
        .collect()
}

/// Live processes whose command line contains `needle` (its arguments joined by spaces), for
/// tests that look for what a command left running.
pub fn processes_with_cmdline(needle: &str) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|stat| stat.is_live())
        .filter(|stat| {
            fs::read(format!("/proc/{}/cmdline", stat.pid)).is_ok_and(|cmdline| {
                let words: Vec<String> = cmdline
                    .split(|byte| *byte == 0)
                    .filter(|word| !word.is_empty())
                    .map(|word| String::from_utf8_lossy(word).into_owned())
                    .collect();
                words.join(" ").contains(needle)
            })
        })
        .filter_map(|stat| u32::try_from(stat.pid).ok())
        .collect()
}

/// Which processes a termination is aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// A command: its root, every descendant, and (for commands that lead one) its process group.
    Tree {
        /// The command's root process.
        root: u32,
        /// Its process group, if it leads its own.
        group: Option<u32>,
    },
    /// Every process carrying these environment markers, and their descendants.
    Marked(Vec<(String, String)>),
}

impl Targets {
    fn select(&self, processes: &[ProcStat]) -> Vec<ProcStat> {
        let seeds: Vec<i32> = match self {
            Self::Tree { root, group } => {
                let group = group.and_then(|group| i32::try_from(group).ok());
                processes
                    .iter()
                    .filter(|stat| {
                        i32::try_from(*root).is_ok_and(|root| stat.pid == root)
                            || Some(stat.pgrp) == group
                    })
                    .map(|stat| stat.pid)
                    .collect()
            }
            Self::Marked(vars) => {
                let vars: Vec<(&str, &str)> = vars
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                processes
                    .iter()
                    .filter(|stat| has_env(stat.pid, &vars))
                    .map(|stat| stat.pid)
                    .collect()
            }
        };
        with_descendants(processes, seeds)
    }
}

fn with_descendants(processes: &[ProcStat], seeds: Vec<i32>) -> Vec<ProcStat> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for stat in processes {
        children.entry(stat.ppid).or_default().push(stat.pid);
    }
    let mut selected = HashSet::new();
    let mut pending = seeds;
    while let Some(pid) = pending.pop() {
        if selected.insert(pid) {
            pending.extend(children.get(&pid).into_iter().flatten());
        }
    }
    processes
        .iter()
        .filter(|stat| selected.contains(&stat.pid))
        .copied()
        .collect()
}

/// How a termination ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Everything exited within the SIGTERM grace period (or nothing was running).
    Graceful,
    /// SIGKILL was needed.
    Forced,
}

/// The processes a termination still has to see exit, by pid and start time.
#[derive(Debug, Default)]
struct Tracked(HashMap<i32, u64>);

impl Tracked {
    /// Adds newly selected processes and forgets those that exited; returns the new ones.
    fn refresh(&mut self, targets: &Targets) -> Vec<i32> {
        let processes = all_processes();
        let live: HashMap<i32, u64> = processes
            .iter()
            .filter(|stat| stat.is_live())
            .map(|stat| (stat.pid, stat.start_time))
            .collect();
        self.0
            .retain(|pid, start| live.get(pid).is_some_and(|now| now == start));
        let own = i32::try_from(std::process::id()).unwrap_or(0);
        targets
            .select(&processes)
            .into_iter()
            .filter(|stat| stat.is_live() && stat.pid > 1 && stat.pid != own)
            .filter(|stat| self.0.insert(stat.pid, stat.start_time).is_none())
            .map(|stat| stat.pid)
            .collect()
    }

    fn signal(pids: impl IntoIterator<Item = i32>, signal: i32) {
        for pid in pids {
            // SAFETY: kill only sends a signal; a vanished pid yields ESRCH, which is fine.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// Terminates `targets`: SIGTERM, up to 5 s for everything to exit, then SIGKILL to survivors and
/// up to 5 s more. Processes that appear meanwhile are signalled too. `on_signal` hears each signal
/// before it is sent, so a caller can tell which one ended its command.
pub async fn terminate(targets: &Targets, on_signal: impl Fn(i32)) -> Termination {
    let mut tracked = Tracked::default();
    let first = tracked.refresh(targets);
    if first.is_empty() {
        return Termination::Graceful;
    }
    on_signal(libc::SIGTERM);
    Tracked::signal(first, libc::SIGTERM);
    let grace_ends = Instant::now() + GRACE;
    while Instant::now() < grace_ends {
        sleep(POLL).await;
        Tracked::signal(tracked.refresh(targets), libc::SIGTERM);
        if tracked.0.is_empty() {
            return Termination::Graceful;
        }
    }
    on_signal(libc::SIGKILL);
    let kill_ends = Instant::now() + KILL_WAIT;
    loop {
        tracked.refresh(targets);
        if tracked.0.is_empty() {
            return Termination::Forced;
        }
        if Instant::now() >= kill_ends {
            tracing::warn!(survivors = ?tracked.0.keys().collect::<Vec<_>>(), "processes survived SIGKILL");
            return Termination::Forced;
        }
        Tracked::signal(tracked.0.keys().copied(), libc::SIGKILL);
        sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{ProcStat, with_descendants};

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line =
            "4242 (we ird) (name)) S 7 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                pid: 4242,
                ppid: 7,
                pgrp: 4242,
                state: b'S',
                start_time: 98765
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn collects_every_descendant() {
        let stat = |pid, ppid| ProcStat {
            pid,
            ppid,
            pgrp: pid,
            state: b'S',
            start_time: 0,
        };
        let processes = [
            stat(10, 1),
            stat(11, 10),
            stat(12, 11),
            stat(13, 1),
            stat(14, 12),
        ];
        let mut pids: Vec<i32> = with_descendants(&processes, vec![11])
            .iter()
            .map(|stat| stat.pid)
            .collect();
        pids.sort_unstable();
        assert_eq!(pids, [11, 12, 14]);
    }
}
