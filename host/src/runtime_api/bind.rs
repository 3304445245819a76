//! Binds the Runtime API: one port for every bootstrap, as AWS and the Go runtime give it,
//! and one loopback address per bootstrap (`127.0.0.(N+1)`; Linux routes all of 127.0.0.0/8
//! to `lo`), so that the listener that accepts a connection names the bootstrap. Owns only
//! the binding; serving is the Runtime API's.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use tokio::net::TcpListener;

/// How many OS-assigned ports are tried before giving up, when another process holds the
/// same port on one of the other loopback addresses.
const ATTEMPTS: usize = 32;

/// The loopback address of bootstrap `runner`: 127.0.0.1 for the first, then onwards.
pub fn address_of(runner: usize) -> Option<Ipv4Addr> {
    let offset = u32::try_from(runner).ok()?;
    let addr = u32::from(Ipv4Addr::LOCALHOST).checked_add(offset)?;
    (addr < u32::from(Ipv4Addr::new(127, 255, 255, 255))).then(|| Ipv4Addr::from(addr))
}

/// One listener per runner, all on `port` (`INTERNAL_API_PORT`); with no port, on one the OS
/// assigns on 127.0.0.1 and that is free on the other addresses too.
pub async fn bind(runners: usize, port: Option<u16>) -> anyhow::Result<Vec<TcpListener>> {
    let runners = runners.max(1);
    if address_of(runners - 1).is_none() {
        anyhow::bail!("INVOKER_COUNT={runners} passes the loopback addresses 127.0.0.0/8");
    }
    if let Some(port) = port {
        return bind_all(runners, port).await.map_err(|(addr, e)| {
            anyhow::anyhow!("cannot listen on {addr} (INTERNAL_API_PORT): {e}")
        });
    }
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen on 127.0.0.1 for the Runtime API")?;
        let port = first.local_addr()?.port();
        match bind_rest(first, runners, port).await {
            Ok(listeners) => return Ok(listeners),
            // Taken on another address: try another port.
            Err((addr, e)) if e.kind() == io::ErrorKind::AddrInUse => last = Some((addr, e)),
            Err((addr, e)) => {
                return Err(e).with_context(|| format!("cannot listen on {addr} (Runtime API)"));
            }
        }
    }
    let (addr, e) = last.unwrap_or_else(|| (String::new(), io::ErrorKind::AddrInUse.into()));
    Err(e).with_context(|| {
        format!("no port was free on every Runtime API address after {ATTEMPTS} tries ({addr})")
    })
}

async fn bind_all(runners: usize, port: u16) -> Result<Vec<TcpListener>, (String, io::Error)> {
    let first = listen(0, port).await?;
    bind_rest(first, runners, port).await
}

/// Binds runners 1.. on `port`, after `first` (runner 0).
async fn bind_rest(
    first: TcpListener,
    runners: usize,
    port: u16,
) -> Result<Vec<TcpListener>, (String, io::Error)> {
    let mut listeners = Vec::with_capacity(runners);
    listeners.push(first);
    for runner in 1..runners {
        listeners.push(listen(runner, port).await?);
    }
    Ok(listeners)
}

async fn listen(runner: usize, port: u16) -> Result<TcpListener, (String, io::Error)> {
    let ip = address_of(runner).unwrap_or(Ipv4Addr::LOCALHOST);
    let addr = SocketAddr::from((ip, port));
    TcpListener::bind(addr)
        .await
        .map_err(|e| (addr.to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_n_gets_127_0_0_n_plus_1() {
        assert_eq!(address_of(0), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(address_of(3), Some(Ipv4Addr::new(127, 0, 0, 4)));
        assert_eq!(address_of(255), Some(Ipv4Addr::new(127, 0, 1, 0)));
        assert_eq!(address_of(1 << 24), None);
    }

    #[tokio::test]
    async fn every_runner_shares_one_port_on_its_own_address() {
        let listeners = bind(3, None).await.unwrap();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        assert_eq!(addrs.len(), 3);
        for (n, a) in addrs.iter().enumerate() {
            assert_eq!(a.port(), addrs[0].port());
            assert_eq!(a.ip(), address_of(n).unwrap());
        }
    }

    #[tokio::test]
    async fn a_port_taken_on_another_address_is_refused_by_name() {
        let taken = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind(2, Some(port)).await.unwrap_err().to_string();
        assert!(err.contains(&format!("127.0.0.2:{port}")), "{err}");
        // Unset, another port is chosen instead.
        let listeners = bind(2, None).await.unwrap();
        assert_ne!(listeners[1].local_addr().unwrap().port(), 0);
    }
}
