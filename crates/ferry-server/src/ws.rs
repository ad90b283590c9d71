//! The WebSocket channel `@nangohq/frontend` listens on: a `connection_ack` with a client id on connect, then one `success` or `error` frame when that client's OAuth flow ends.

use axum::extract::ws::{Message, WebSocket};
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Connected browser clients by `ws_client_id`.
#[derive(Debug, Default)]
pub struct WsHub {
    clients: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
}

impl WsHub {
    /// Serves one socket: acknowledges it, then forwards frames published for its id.
    pub async fn serve(&self, mut socket: WebSocket) {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.clients.lock().insert(id.clone(), tx);
        let ack =
            serde_json::json!({"message_type": "connection_ack", "ws_client_id": id}).to_string();
        if socket.send(Message::Text(ack.into())).await.is_ok() {
            loop {
                tokio::select! {
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

    /// Sends a frame to one client, if it is still connected.
    pub fn publish(&self, ws_client_id: &str, frame: &serde_json::Value) {
        if let Some(tx) = self.clients.lock().get(ws_client_id) {
            let _ = tx.send(frame.to_string());
        }
    }
}
