//! A real HTTP server on 127.0.0.1 serving fixed bodies by path and query, standing in for
//! the hosts of zips and icons (`/<host>/<path>?<query>`). Counts requests, so tests can tell
//! what was downloaded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};

#[derive(Default)]
struct Shared {
    bodies: Mutex<BTreeMap<String, Vec<u8>>>,
    requests: AtomicUsize,
    /// Paths whose requests wait until released (to catch a client mid-run).
    held: Mutex<std::collections::BTreeSet<String>>,
    released: tokio::sync::Notify,
    waiting: AtomicUsize,
}

pub struct HttpServer {
    pub port: u16,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn handler(State(shared): State<Arc<Shared>>, uri: Uri) -> (StatusCode, Vec<u8>) {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let key = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    loop {
        let notified = shared.released.notified();
        if !shared.held.lock().unwrap().contains(&key) {
            break;
        }
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        notified.await;
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
    }
    match shared.bodies.lock().unwrap().get(&key) {
        Some(b) => (StatusCode::OK, b.clone()),
        None => (StatusCode::NOT_FOUND, b"not found".to_vec()),
    }
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let shared = Arc::new(Shared::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            super::block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(handler).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        HttpServer {
            port,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Serves `body` at `path_and_query` (e.g. `/code.quarkus.io/d?e=x`).
    pub fn put(&self, path_and_query: &str, body: Vec<u8>) {
        self.shared
            .bodies
            .lock()
            .unwrap()
            .insert(path_and_query.to_string(), body);
    }

    pub fn remove(&self, path_and_query: &str) {
        self.shared.bodies.lock().unwrap().remove(path_and_query);
    }

    /// Requests for `path_and_query` wait until [`HttpServer::release_all`].
    pub fn hold(&self, path_and_query: &str) {
        self.shared
            .held
            .lock()
            .unwrap()
            .insert(path_and_query.to_string());
    }

    pub fn release_all(&self) {
        self.shared.held.lock().unwrap().clear();
        self.shared.released.notify_waiters();
    }

    /// How many requests are waiting on a hold now.
    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.release_all();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
