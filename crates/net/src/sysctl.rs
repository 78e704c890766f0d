//! The few sysctls a bridge network needs on the host.

use anyhow::Context as _;

use crate::Error;

/// Write `value` to `/proc/sys/<key with dots as slashes>` if it differs.
pub fn set(key: &str, value: &str) -> Result<(), Error> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    tracing::info!(target: "explain::sysctl", "{key} = {value}");
    std::fs::write(&path, value).with_context(|| format!("setting sysctl {key}"))?;
    Ok(())
}

/// Forwarding for egress, route_localnet so 127.0.0.1 clients can be DNATed
/// to the bridge (their source is masqueraded on the way out).
pub fn for_bridge(bridge: &str) -> Result<(), Error> {
    set("net.ipv4.ip_forward", "1")?;
    set(&format!("net.ipv4.conf.{bridge}.route_localnet"), "1")
}
