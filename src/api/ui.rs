//! The web UI: a handful of pages (overview, targets, alerts, rules,
//! silences, notifications, graph) built from plain HTML, CSS and
//! JavaScript compiled into the binary, so there is no build step and no
//! external asset. Every page is the same shell (`ui/page.html`: nav bar
//! and an empty `<main>`) plus one script that renders the page from the
//! JSON APIs the server already offers; this module only serves files.
//!
//! The routes sit behind the same authentication as the API (the browser
//! sends the basic-auth credentials with every same-origin request). HTML
//! answers carry a strict Content-Security-Policy: scripts and styles only
//! from this origin, so text that slips into the page as markup could not
//! run. The scripts build the DOM from text nodes and never parse
//! untrusted strings as HTML.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use crate::template::html_escape;

/// The page shell; `{{page}}`, `{{title}}` and `{{brand}}` are filled in
/// per request.
const SHELL: &str = include_str!("ui/page.html");

/// A page: its route, the script that renders it (`ui/<script>.js`) and
/// its title.
struct Page {
    route: &'static str,
    script: &'static str,
    title: &'static str,
}

const PAGES: &[Page] = &[
    Page {
        route: "/",
        script: "overview",
        title: "Overview",
    },
    Page {
        route: "/targets",
        script: "targets",
        title: "Targets",
    },
    Page {
        route: "/alerts",
        script: "alerts",
        title: "Alerts",
    },
    Page {
        route: "/rules",
        script: "rules",
        title: "Rules",
    },
    Page {
        route: "/silences",
        script: "silences",
        title: "Silences",
    },
    Page {
        route: "/notifications",
        script: "notifications",
        title: "Notifications",
    },
    Page {
        route: "/graph",
        script: "graph",
        title: "Graph",
    },
];

const JS: &str = "text/javascript; charset=utf-8";

/// The static files under `/ui/`: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("ui/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("ui/favicon.svg"),
    ),
    ("common.js", JS, include_bytes!("ui/common.js")),
    ("overview.js", JS, include_bytes!("ui/overview.js")),
    ("targets.js", JS, include_bytes!("ui/targets.js")),
    ("alerts.js", JS, include_bytes!("ui/alerts.js")),
    ("rules.js", JS, include_bytes!("ui/rules.js")),
    ("silences.js", JS, include_bytes!("ui/silences.js")),
    (
        "notifications.js",
        JS,
        include_bytes!("ui/notifications.js"),
    ),
    ("graph.js", JS, include_bytes!("ui/graph.js")),
];

/// Scripts and styles from this origin only; no inline script, no
/// plugins, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The UI routes, to be merged into the authenticated router.
pub(super) fn routes() -> Router<ApiState> {
    let mut r = Router::new().route("/ui/{file}", get(asset));
    for (i, p) in PAGES.iter().enumerate() {
        r = r.route(p.route, get(move |st: State<ApiState>| page(st, &PAGES[i])));
    }
    r
}

async fn page(State(st): State<ApiState>, p: &'static Page) -> Response {
    let brand = st
        .current_config()
        .web
        .page_title
        .clone()
        .unwrap_or_else(|| "watchpost".to_string());
    let html = SHELL
        .replace("{{page}}", p.script)
        .replace("{{title}}", p.title)
        .replace("{{brand}}", &html_escape(&brand));
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        html,
    )
        .into_response();
    common_headers(&mut resp);
    resp
}

async fn asset(Path(file): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    let mut resp = ([(header::CONTENT_TYPE, *content_type)], *bytes).into_response();
    common_headers(&mut resp);
    resp
}

fn common_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The files change with the binary; revalidating costs little and an
    // upgrade never leaves a browser with a stale script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_script_is_an_asset() {
        for p in PAGES {
            let name = format!("{}.js", p.script);
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "{name} is not served"
            );
        }
    }

    /// The scripts build the DOM from text nodes; an HTML sink would let
    /// a label value become markup.
    #[test]
    fn scripts_use_no_html_sinks() {
        for (name, _, bytes) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).expect("scripts are UTF-8");
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(sink), "{name} uses {sink}");
            }
        }
    }
}
