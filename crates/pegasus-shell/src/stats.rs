//! `server_info`, `server_stat`, `app_stat`: built on the servers' HTTP endpoints (the same
//! data Prometheus scrapes), fetched over their RPC ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest HTTP answer read.
const MAX_BODY: usize = 8 << 20;

/// `GET path` on a server's port; the body of a 200 answer.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut raw = Vec::new();
        (&mut s)
            .take(MAX_BODY as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "{addr}{path}: {}",
                head.lines().next().unwrap_or_default()
            ));
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| format!("{addr}: timed out"))?
}

/// One sample of Prometheus text: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses Prometheus text exposition lines (enough for our own servers' output).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or(rest);
                let labels = inner
                    .split(',')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.to_string(), v.trim_matches('"').to_string()))
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The sum of `name`'s samples whose labels include `want`.
pub fn total(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// A replica server's data disk, as the meta leader last heard it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeDisk {
    /// Bytes available.
    pub available_bytes: u64,
    /// Size of the file system.
    pub capacity_bytes: u64,
    /// Below `disk_min_available_space_ratio`: the node takes no new replica.
    pub insufficient: bool,
}

/// The value of `"key":` in a flat JSON object's text (unquoted for strings).
fn json_field<'a>(object: &'a str, key: &str) -> Option<&'a str> {
    let rest = object.split(&format!("\"{key}\":")).nth(1)?.trim_start();
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split([',', '}']).next().map(str::trim),
    }
}

/// Parses the meta leader's `/meta/nodes` (an array of flat objects): address → disk, for
/// the nodes that reported one.
pub fn parse_node_disks(json: &str) -> BTreeMap<String, NodeDisk> {
    json.split('}')
        .filter_map(|object| {
            let number = |k: &str| json_field(object, k)?.parse::<u64>().ok();
            Some((
                json_field(object, "address")?.to_string(),
                NodeDisk {
                    available_bytes: number("disk_available_bytes")?,
                    capacity_bytes: number("disk_capacity_bytes")?,
                    insufficient: json_field(object, "disk_insufficient")? == "true",
                },
            ))
        })
        .collect()
}

/// Parses the meta leader's `/meta/app?name=`: the partitions kept short of copies for
/// lack of disk.
pub fn parse_short_of_disk(json: &str) -> std::collections::BTreeSet<i32> {
    json.split('}')
        .filter(|partition| json_field(partition, "short_of_disk") == Some("true"))
        .filter_map(|partition| json_field(partition, "pidx")?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_app_short_of_disk_parses() {
        let s = parse_short_of_disk(
            r#"{"app_id":1,"name":"t","partitions":[{"ballot":3,"last_drops":[],"pidx":0,"primary":"127.0.0.1:1","secondaries":["127.0.0.1:2"],"short_of_disk":true},{"ballot":3,"last_drops":["127.0.0.1:9"],"pidx":1,"primary":"127.0.0.1:2","secondaries":["127.0.0.1:1","127.0.0.1:3"],"short_of_disk":false},{"pidx":2,"short_of_disk":true}]}"#,
        );
        assert_eq!(s, [0, 2].into_iter().collect());
    }

    #[test]
    fn meta_nodes_disks_parse() {
        let d = parse_node_disks(
            r#"[{"address":"127.0.0.1:34801","disk_available_bytes":1048576,"disk_capacity_bytes":209715200,"disk_insufficient":true,"status":"ALIVE"},{"address":"127.0.0.1:34802","disk_available_bytes":null,"disk_capacity_bytes":null,"disk_insufficient":null,"status":"UNALIVE"}]"#,
        );
        assert_eq!(
            d,
            BTreeMap::from([(
                "127.0.0.1:34801".to_string(),
                NodeDisk {
                    available_bytes: 1 << 20,
                    capacity_bytes: 200 << 20,
                    insufficient: true
                }
            )])
        );
    }

    #[test]
    fn prometheus_text_parses() {
        let s = parse_metrics(
            "# TYPE x counter\nx_total{op=\"get\",code=\"ERR_OK\"} 3\nx_total{op=\"put\"} 4\ny 2.5\n\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(total(&s, "x_total", &[]), 7.0);
        assert_eq!(total(&s, "x_total", &[("op", "get")]), 3.0);
        assert_eq!(total(&s, "y", &[]), 2.5);
    }
}
