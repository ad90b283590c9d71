//! The Connect UI: a small server-rendered page at the `connect_link` that lists the session's integrations, asks for an optional My Domain, runs the OAuth popup flow and shows the outcome; it also speaks `openConnectUI`'s iframe messages.

use super::connect::resolve_session;
use super::pages::{self, escape, Origins};
use crate::providers::provider;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/connect", get(page))
        .route("/connect/", get(page))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem;color:#1f2937}\
h1{font-size:1.35rem}ul{list-style:none;padding:0}li{border:1px solid #d1d5db;border-radius:.5rem;padding:1rem;margin:.75rem 0}\
button{font-size:1rem;padding:.5rem 1rem;border-radius:.375rem;border:1px solid #2563eb;background:#2563eb;color:#fff;cursor:pointer}\
label{display:block;font-size:.875rem;margin:.5rem 0 .25rem}input{width:100%;padding:.4rem;box-sizing:border-box}\
.hint{font-size:.8rem;color:#6b7280}.error{color:#b91c1c}.ok{color:#047857}\
button.secondary{background:#fff;color:#1f2937;border-color:#d1d5db}";

/// A page: the body, and a script that sees `targets` (where it may post messages).
fn shell(title: &str, body: &str, script: &str, origins: &Origins) -> Response {
    let nonce = pages::nonce();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style nonce=\"{nonce}\">{STYLE}</style></head><body><main>{body}</main>\
<script nonce=\"{nonce}\">var targets = {};{script}</script></body></html>",
        escape(title),
        origins.targets_js(),
    );
    let mut resp = (StatusCode::OK, Html(html)).into_response();
    pages::secure(&mut resp, &nonce, origins);
    resp
}

/// When opened in `openConnectUI`'s iframe without a token, ask the parent for it.
const WAIT_FOR_TOKEN: &str = r#"
window.addEventListener("message", function (event) {
  if (targets.indexOf("*") < 0 && targets.indexOf(event.origin) < 0) { return; }
  if (event.data && event.data.type === "session_token" && event.data.sessionToken) {
    var url = new URL(window.location.href);
    url.searchParams.set("session_token", event.data.sessionToken);
    window.location.replace(url.toString());
  }
});
// "ready" carries nothing, so any parent may hear it; the token it answers with is itself the
// capability. Only origins allowed to frame this page (frame-ancestors) get this far.
if (window.parent !== window) { window.parent.postMessage({ type: "ready" }, "*"); }
"#;

/// Runs the flow for a clicked integration and reports the outcome on the page and to a parent frame.
const FLOW: &str = r#"
var token = document.body.dataset.token;
function tell(message) {
  if (window.parent === window) { return; }
  targets.forEach(function (origin) { window.parent.postMessage(message, origin); });
}
function show(id, text, cls) {
  var out = document.getElementById("outcome");
  out.innerHTML = "";
  var p = document.createElement("p");
  p.setAttribute("data-testid", id);
  p.className = cls;
  p.textContent = text;
  out.appendChild(p);
}
tell({ type: "ready" });
document.querySelectorAll("form.integration").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var key = form.dataset.key;
    var hostInput = form.querySelector("input[name=hostname]");
    var hostname = hostInput ? hostInput.value.trim().replace(/^https?:\/\//, "").replace(/\/.*$/, "") : "";
    var popup = window.open("", "ferry-oauth", "width=520,height=680");
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/");
    show("connect-pending", "Waiting for Salesforce…", "hint");
    ws.onmessage = function (msg) {
      var data = JSON.parse(msg.data);
      if (data.message_type === "connection_ack") {
        var url = "/oauth/connect/" + encodeURIComponent(key) + "?connect_session_token=" + encodeURIComponent(token) +
          "&ws_client_id=" + encodeURIComponent(data.ws_client_id) +
          (hostname ? "&params%5Bhostname%5D=" + encodeURIComponent(hostname) : "");
        if (popup) { popup.location.href = url; } else { window.location.href = url; }
      } else if (data.message_type === "success") {
        show("connect-success", "Connected: your Salesforce org is linked.", "ok");
        tell({ type: "connect", payload: { providerConfigKey: data.provider_config_key, connectionId: data.connection_id, isPending: false } });
        ws.close();
      } else if (data.message_type === "error") {
        show("connect-error", data.error_desc || "The connection failed.", "error");
        tell({ type: "error", payload: { errorType: data.error_type, errorMessage: data.error_desc } });
        ws.close();
      }
    };
  });
});
document.getElementById("close").addEventListener("click", function () { tell({ type: "close" }); });
"#;

async fn page(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let token = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "session_token")
        .map(|(_, v)| v.into_owned());
    let Some(token) = token else {
        return shell(
            "Connect",
            "<h1>Connect</h1><p class=\"hint\">Waiting for a connect session…</p>",
            WAIT_FOR_TOKEN,
            &Origins::of_all(&state).await,
        );
    };
    let auth = match resolve_session(&state, &token).await {
        Ok(a) => a,
        Err(e) => {
            let body = format!(
                "<h1>Connect</h1><p class=\"error\" data-testid=\"connect-error\">{}</p>",
                escape(&e.message)
            );
            return shell("Connect", &body, "", &Origins::of(&state, None).await);
        }
    };
    let integrations = match state.store.list_integrations(auth.environment.id).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "listing integrations for the Connect UI");
            return shell(
                "Connect",
                "<h1>Connect</h1><p class=\"error\">Something went wrong; try again.</p>",
                "",
                &Origins::of(&state, None).await,
            );
        }
    };
    let allowed: Option<&Vec<String>> = auth.session.allowed_integrations.as_ref();
    let mut items = String::new();
    for i in integrations
        .iter()
        .filter(|i| allowed.as_ref().is_none_or(|a| a.contains(&i.unique_key)))
    {
        let sandbox =
            provider(&i.provider).is_some_and(|p| p.login == crate::providers::LoginKind::Sandbox);
        let example = if sandbox {
            "acme--dev.sandbox.my.salesforce.com"
        } else {
            "acme.my.salesforce.com"
        };
        let hint = if sandbox {
            "For sandbox orgs. Use the Salesforce integration for production and developer orgs."
        } else {
            "For production and developer orgs. A sandbox org needs the Salesforce (Sandbox) integration."
        };
        items.push_str(&format!(
            "<li><form class=\"integration\" data-key=\"{key}\"><button type=\"submit\">{name}</button>\
<label for=\"host-{key}\">My Domain (optional)</label><input id=\"host-{key}\" name=\"hostname\" placeholder=\"{example}\" autocomplete=\"off\">\
<p class=\"hint\">{hint} Enter your My Domain login host, not the Lightning (…lightning.force.com) address.</p></form></li>",
            key = escape(&i.unique_key),
            name = escape(&i.display_name),
        ));
    }
    if items.is_empty() {
        items.push_str("<li>No integration is available for this session.</li>");
    }
    let body = format!(
        "<h1>Connect your Salesforce org</h1><ul>{items}</ul><div id=\"outcome\" aria-live=\"polite\"></div>\
<p><button id=\"close\" type=\"button\" class=\"secondary\">Close</button></p>"
    );
    let script = format!(
        "document.body.dataset.token = {};{FLOW}",
        serde_json::Value::String(token)
            .to_string()
            .replace('<', "\\u003c")
    );
    let origins = Origins::of(&state, Some(auth.environment.id)).await;
    shell("Connect your Salesforce org", &body, &script, &origins)
}
