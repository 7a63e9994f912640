//! The workerd processes behind `wrangler dev`, for measurements: which they are, how much
//! memory they hold, and the socket where the Worker itself listens.
//!
//! `wrangler dev` answers on its own proxy (a second workerd), which forwards every request to the
//! Worker's workerd. Production has no such proxy, so the bench also measures at the Worker's own
//! socket, found here by asking each socket the workerd processes listen on for `/healthz`.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;

use super::http_get;

/// The workerd processes of process group `group`.
pub fn workerd_pids(group: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((name, rest)) = stat
                .split_once(" (")
                .and_then(|(_, rest)| rest.rsplit_once(") "))
            else {
                return false;
            };
            let process_group = rest.split_whitespace().nth(2).and_then(|g| g.parse().ok());
            name == "workerd" && process_group == Some(group)
        })
        .collect()
}

/// Resident memory of the workerd processes of process group `group`, in bytes.
pub fn workerd_rss(group: u32) -> u64 {
    workerd_pids(group)
        .into_iter()
        .filter_map(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum::<u64>()
        * 1024
}

/// The socket where the Worker of process group `group` answers `/healthz` itself, other than
/// `proxy` (wrangler's).
pub fn worker_socket(group: u32, proxy: SocketAddr) -> Option<SocketAddr> {
    let sockets: BTreeSet<String> = workerd_pids(group)
        .into_iter()
        .filter_map(|pid| fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flatten()
        .filter_map(|fd| {
            let target = fs::read_link(fd.ok()?.path()).ok()?;
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            let (ip, port) = address.split_once(':')?;
            let listening_on_loopback = *state == "0A" && ip == "0100007F";
            (listening_on_loopback && sockets.contains(*inode))
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .filter(|addr| *addr != proxy)
        .find(|addr| {
            http_get(*addr, "/healthz").is_ok_and(|(status, body)| status == 200 && body == "ok")
        })
}
