//! HTTP on the RPC port, as Pegasus does: a connection whose first bytes are `GET ` or
//! `POST` is handed to an [`HttpService`] instead of the THFT decoder. Only what an admin
//! endpoint needs: GET, one request per connection, a bounded header, `Connection: close`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 << 10;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// `Location` (redirects).
    pub location: Option<String>,
}

impl HttpResponse {
    /// 200 with a JSON body.
    pub fn json(body: String) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: body.into_bytes(),
            location: None,
        }
    }

    /// 307 to `url` (a follower meta points at the leader, as Pegasus's does).
    pub fn redirect(url: String) -> Self {
        Self {
            status: 307,
            content_type: "text/plain; charset=utf-8",
            body: format!("see {url}\n").into_bytes(),
            location: Some(url),
        }
    }

    /// 200 with a text body.
    pub fn text(content_type: &'static str, body: String) -> Self {
        Self {
            status: 200,
            content_type,
            body: body.into_bytes(),
            location: None,
        }
    }

    /// An error status with a short text body.
    pub fn error(status: u16, msg: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{msg}\n").into_bytes(),
            location: None,
        }
    }
}

/// Answers GET (and a few POST) requests.
pub trait HttpService: Send + Sync + 'static {
    /// `path` without the query; `query` is what follows `?` (possibly empty).
    fn get(&self, path: &str, query: &str) -> HttpResponse;

    /// A POST (parameters in the query; a body is ignored). None by default.
    fn post(&self, _path: &str, _query: &str) -> HttpResponse {
        HttpResponse::error(405, "only GET is served")
    }
}

/// The value of `name` in a query string (no percent-decoding beyond `+`).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Whether the first bytes of a connection look like HTTP.
pub fn is_http(first: &[u8]) -> bool {
    first.starts_with(b"GET ") || first.starts_with(b"POST") || first.starts_with(b"HEAD")
}

/// Serves one HTTP request on `stream`, then closes it. `head` holds the bytes already
/// read from it; the request head must be complete by `deadline`, and the answer must be
/// taken by the peer within `write_timeout`, or the connection is dropped.
pub async fn serve_connection(
    mut stream: TcpStream,
    mut head: Vec<u8>,
    deadline: tokio::time::Instant,
    write_timeout: Duration,
    service: Arc<dyn HttpService>,
) {
    let mut buf = [0u8; 2048];
    let complete = tokio::time::timeout_at(deadline, async {
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return true;
            }
            if head.len() > MAX_HEAD {
                return false;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    })
    .await
    .unwrap_or(false);
    let resp = if !complete {
        if head.len() > MAX_HEAD {
            HttpResponse::error(431, "request head too large")
        } else {
            return;
        }
    } else {
        let line = head
            .split(|b| *b == b'\r')
            .next()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_default();
        let mut parts = line.split(' ');
        match (parts.next(), parts.next()) {
            (Some(method @ ("GET" | "POST")), Some(target)) => {
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                if method == "GET" {
                    service.get(path, query)
                } else {
                    service.post(path, query)
                }
            }
            (Some(_), Some(_)) => HttpResponse::error(405, "only GET is served"),
            _ => HttpResponse::error(400, "bad request line"),
        }
    };
    let location = resp
        .location
        .as_ref()
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{location}Connection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&resp.body);
    let _ = tokio::time::timeout(write_timeout, async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found() {
        assert_eq!(query_param("name=temp&detail", "name"), Some("temp"));
        assert_eq!(query_param("name=temp&detail", "detail"), Some(""));
        assert_eq!(query_param("", "name"), None);
    }

    #[test]
    fn http_is_told_from_thft() {
        assert!(is_http(b"GET /metrics"));
        assert!(!is_http(b"THFT"));
    }
}

/// Renders the process's metrics in Prometheus text format.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// The endpoints every server has: `/version`, `/health`, `/metrics`, `/config`.
#[derive(Clone)]
pub struct CommonEndpoints {
    /// `meta` or `replica`.
    pub role: &'static str,
    /// The build's version.
    pub version: &'static str,
    /// The effective configuration, as JSON.
    pub config_json: String,
    /// Prometheus text of the process's metrics (none: no recorder installed).
    pub metrics: Option<MetricsRender>,
}

impl std::fmt::Debug for CommonEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonEndpoints")
            .field("role", &self.role)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl CommonEndpoints {
    /// Endpoints without a configuration view or a metrics recorder (in-process servers).
    pub fn bare(role: &'static str, version: &'static str) -> Self {
        Self {
            role,
            version,
            config_json: "{}".into(),
            metrics: None,
        }
    }

    /// Answers a common path; `None` for role-specific ones. `extra` lists the
    /// role-specific paths for the index page.
    pub fn get(&self, path: &str, extra: &[&str]) -> Option<HttpResponse> {
        Some(match path {
            "/" => {
                let mut paths = vec!["/version", "/health", "/metrics", "/config"];
                paths.extend_from_slice(extra);
                let list: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
                HttpResponse::json(format!(
                    "{{\"role\":\"{}\",\"paths\":[{}]}}",
                    self.role,
                    list.join(",")
                ))
            }
            "/version" => HttpResponse::json(format!(
                "{{\"role\":\"{}\",\"version\":\"{}\"}}",
                self.role, self.version
            )),
            "/health" => HttpResponse::text("text/plain; charset=utf-8", "ok\n".into()),
            "/config" => HttpResponse::json(self.config_json.clone()),
            "/metrics" => match &self.metrics {
                Some(render) => HttpResponse::text("text/plain; version=0.0.4", render()),
                None => HttpResponse::error(503, "no metrics recorder in this process"),
            },
            _ => return None,
        })
    }
}
