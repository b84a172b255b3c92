//! Nothing lost, nothing wrong accepted: `airgap serve` against slow and idle clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve::{Served, server_registry};

/// Reads from `stream` until the server closes it, or fails after `bound`; returns how long
/// the server took.
fn time_until_closed(stream: &mut TcpStream, bound: Duration) -> Duration {
    stream
        .set_read_timeout(Some(bound))
        .expect("sets a read timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => started.elapsed(),
        Err(e) => panic!(
            "the server kept the connection open for {:?} ({e}); it sent {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&rest)
        ),
    }
}

fn health(served: &Served) -> String {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let response = client
        .get(served.url("/health"))
        .send()
        .unwrap_or_else(|e| panic!("/health did not answer within 10 s: {e}"));
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().expect("a body")
}

#[test]
fn serve_closes_connections_that_send_partial_headers_or_nothing() {
    let dir = server_registry();
    let served = Served::start_with(dir.path(), &["--header-timeout", "1"]);

    let mut slow = TcpStream::connect(served.addr).expect("connects");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: airgap\r\nX-Slow: ")
        .expect("writes");
    let mut silent = TcpStream::connect(served.addr).expect("connects");

    let took = time_until_closed(&mut slow, Duration::from_secs(20));
    assert!(
        took < Duration::from_secs(10),
        "closed after {took:?}, not within the 1 s header timeout"
    );
    let took = time_until_closed(&mut silent, Duration::from_secs(20));
    assert!(took < Duration::from_secs(10), "closed after {took:?}");

    // A kept-alive connection idle after its response is closed as well.
    let mut idle = TcpStream::connect(served.addr).expect("connects");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: airgap\r\n\r\n")
        .expect("writes");
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("sets a read timeout");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).expect("a response");
    assert_eq!(&first, b"HTTP/1.1 200");
    time_until_closed(&mut idle, Duration::from_secs(20));

    assert!(health(&served).contains("the server is up and running"));
}

#[test]
fn serve_answers_health_with_more_idle_connections_than_file_descriptors() {
    let dir = server_registry();
    // 256 descriptors for the server; 300 connections that never send a byte. The header
    // timeout is long, so only the connection limit can keep the server answering.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0" serve "$1" --addr 127.0.0.1:0 --header-timeout 120"#)
        .arg(env!("CARGO_BIN_EXE_airgap"))
        .arg(dir.path());
    let served = Served::spawn(cmd);

    let idle: Vec<TcpStream> = (0..300)
        .map(|i| TcpStream::connect(served.addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let started = Instant::now();
    assert!(health(&served).contains("the server is up and running"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "/health took {:?}",
        started.elapsed()
    );
    // And again: the server still accepts after making room.
    assert!(health(&served).contains("the server is up and running"));
    drop(idle);
}
