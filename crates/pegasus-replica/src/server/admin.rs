//! The replica server's HTTP endpoints on its client port (replicas, fail points,
//! manual compaction, metrics).

use super::*;

impl HttpService for ReplicaHttp {
    fn get(&self, path: &str, _query: &str) -> HttpResponse {
        if let Some(r) = self.common.get(path, &["/replica/replicas"]) {
            return r;
        }
        let Some(s) = self.server.upgrade() else {
            return HttpResponse::error(503, "stopping");
        };
        match path {
            "/replica/replicas" => {
                let list: Vec<serde_json::Value> = s
                    .replica_list()
                    .iter()
                    .map(|r| {
                        let (status, rep) = r.report();
                        serde_json::json!({
                            "app_id": r.gpid.app_id,
                            "partition_index": r.gpid.pidx,
                            "table": r.app().name,
                            "status": format!("{status:?}"),
                            "ballot": rep.ballot,
                            "last_committed_decree": rep.last_committed,
                            "last_prepared_decree": rep.last_prepared,
                            "last_timestamp_us": r.last_timestamp_us(),
                        })
                    })
                    .chain(s.pending_reopens_json())
                    .collect();
                HttpResponse::json(serde_json::Value::Array(list).to_string())
            }
            "/failpoint" => HttpResponse::json(crate::failpoint::GLOBAL.status_json()),
            _ => HttpResponse::error(404, "not found; GET / lists the paths"),
        }
    }

    /// `POST /failpoint?name=<point>&times=<n>` arms a fail point (`name=off` disarms all);
    /// refused unless the server runs with `enable_fail_points`.
    fn post(&self, path: &str, query: &str) -> HttpResponse {
        use crate::failpoint::{FailPoint, GLOBAL};
        if path != "/failpoint" {
            return HttpResponse::error(405, "only /failpoint takes POST");
        }
        let name = query_param(query, "name").unwrap_or_default();
        if name == "off" {
            GLOBAL.disarm_all();
            pegasus_rpc::set_send_delay(0, 0);
            return HttpResponse::json(GLOBAL.status_json());
        }
        let number = |key: &str, default: u32| match query_param(query, key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| HttpResponse::error(400, &format!("{key} must be a number"))),
        };
        if name == "net_delay" {
            if !GLOBAL.enabled() {
                return HttpResponse::error(403, "fail points are off");
            }
            return match (number("ms", 75), number("jitter", 0)) {
                (Ok(ms), Ok(jitter)) => {
                    pegasus_rpc::set_send_delay(ms, jitter);
                    HttpResponse::json(format!("{{\"net_delay_ms\":{ms},\"jitter_ms\":{jitter}}}"))
                }
                (Err(e), _) | (_, Err(e)) => e,
            };
        }
        let point = match name.parse::<FailPoint>() {
            Ok(p) => p,
            Err(e) => return HttpResponse::error(400, &e),
        };
        let times = match number("times", 1) {
            Ok(n) => n,
            Err(e) => return e,
        };
        match GLOBAL.arm(point, times) {
            Ok(()) => HttpResponse::json(GLOBAL.status_json()),
            Err(e) => HttpResponse::error(403, &e),
        }
    }
}
