//! The WebSocket channel `@nangohq/frontend` listens on: a `connection_ack` with a client id on connect, then one `success` or `error` frame when that client's OAuth flow ends; a socket that no connect flow claims soon is closed, claimed ones close after an idle limit, and the number of sockets is capped.

use axum::extract::ws::{Message, WebSocket};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// One connected browser client.
#[derive(Debug)]
struct Client {
    /// Frames published for it.
    frames: mpsc::UnboundedSender<String>,
    /// Fired when a connect flow (started with a valid connect session) names this client.
    claimed: Arc<Notify>,
}

/// Connected browser clients by `ws_client_id`.
#[derive(Debug, Default)]
pub struct WsHub {
    clients: Mutex<HashMap<String, Client>>,
}

/// How long sockets live.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Until a connect flow claims the socket.
    pub unclaimed: Duration,
    /// After it was claimed, waiting for the flow's outcome.
    pub idle: Duration,
}

impl WsHub {
    /// Open sockets.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Serves one socket: acknowledges it, then forwards frames published for its id, until
    /// the client leaves or a time limit passes. The anonymous socket is only a channel for
    /// a flow's outcome: unless a connect flow claims it (by its `ws_client_id`) within
    /// `limits.unclaimed`, it is closed.
    pub async fn serve(&self, mut socket: WebSocket, limits: SocketLimits) {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let claimed = Arc::new(Notify::new());
        self.clients.lock().insert(
            id.clone(),
            Client {
                frames: tx,
                claimed: claimed.clone(),
            },
        );
        let ack =
            serde_json::json!({"message_type": "connection_ack", "ws_client_id": id}).to_string();
        if socket.send(Message::Text(ack.into())).await.is_ok() {
            let deadline = tokio::time::sleep(limits.unclaimed);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => {
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                    _ = claimed.notified() => {
                        deadline.as_mut().reset(tokio::time::Instant::now() + limits.idle);
                    }
                    frame = rx.recv() => match frame {
                        Some(text) => {
                            if socket.send(Message::Text(text.into())).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    incoming = socket.recv() => match incoming {
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
        self.clients.lock().remove(&id);
    }

    /// A connect flow names this client: its socket may now wait for the outcome.
    pub fn claim(&self, ws_client_id: &str) {
        if let Some(client) = self.clients.lock().get(ws_client_id) {
            client.claimed.notify_one();
        }
    }

    /// Sends a frame to one client, if it is still connected.
    pub fn publish(&self, ws_client_id: &str, frame: &serde_json::Value) {
        if let Some(client) = self.clients.lock().get(ws_client_id) {
            let _ = client.frames.send(frame.to_string());
        }
    }
}
