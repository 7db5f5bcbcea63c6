//! Internal RPCs from other servers: PacificA messages (opening a replica a primary
//! invites to learn), meta's proposals and configuration pushes, and learn-file reads.

use super::*;

impl ReplicaServer {
    pub(super) async fn on_internal(self: &Arc<Self>, call: InternalCall) -> Option<ResponseFrame> {
        match call.message.name.as_str() {
            names::PEER => {
                let env: PeerEnvelope = call.decode().ok()?;
                let replica = match self.replica(env.gpid) {
                    Some(r) => Some(r),
                    // A primary invites this node to learn a partition it does not hold.
                    None => match &env.msg {
                        PeerMessage::AddLearner { config, .. } => self
                            .open_replica(env.gpid, Some((config.clone(), app_hint(env.gpid))))
                            .map_err(|e| {
                                tracing::warn!("replica {:?}: cannot open to learn: {e}", env.gpid)
                            })
                            .ok(),
                        _ => None,
                    },
                };
                if let Some(r) = replica {
                    r.send(Input::Core(Event::Message {
                        from: env.from,
                        msg: env.msg,
                    }));
                }
                None
            }
            meta_names::PROPOSAL => {
                let p: Proposal = call.decode().ok()?;
                let gpid = p.config.gpid;
                let replica = match self.replica(gpid) {
                    Some(r) => Some(r),
                    None if p.node == self.ctx.me
                        && matches!(p.kind, ConfigType::AssignPrimary) =>
                    {
                        self.open_replica(gpid, Some((p.config.clone(), p.app.clone())))
                            .ok()
                    }
                    None => None,
                };
                if let Some(r) = replica {
                    if r.app() != p.app {
                        r.send(Input::App(p.app.clone()));
                    }
                    r.send(Input::Proposal {
                        config: p.config,
                        kind: p.kind,
                        node: p.node,
                    });
                }
                None
            }
            meta_names::CONFIG_PUSH => {
                let p: SyncedPartition = call.decode().ok()?;
                self.on_partition(p);
                None
            }
            names::LEARN_FILE => {
                let req: LearnFileRequest = match call.decode() {
                    Ok(r) => r,
                    Err(_) => return Some(call.error(ErrorCode::InvalidParameters)),
                };
                Some(match blocking(|| self.read_learn_file(&req)) {
                    Ok(data) => call.reply(&LearnFileResponse { data }),
                    Err(code) => call.error(code),
                })
            }
            _ => Some(call.error(ErrorCode::HandlerNotFound)),
        }
    }

    pub(super) fn read_learn_file(&self, req: &LearnFileRequest) -> Result<Bytes, ErrorCode> {
        if !plain_name(&req.name) || !plain_name(&req.file) {
            return Err(ErrorCode::InvalidParameters);
        }
        let path = layout::replica_dir(&self.ctx.root, req.gpid)
            .join("learn")
            .join(&req.name)
            .join(&req.file);
        let len = req.len.min(self.ctx.cfg.learn_chunk_bytes) as usize;
        let read = || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(req.offset))?;
            let mut buf = vec![0u8; len];
            let mut got = 0;
            while got < len {
                let n = f.read(buf.get_mut(got..).unwrap_or_default())?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            Ok(buf)
        };
        read()
            .map(Bytes::from)
            .map_err(|_| ErrorCode::ObjectNotFound)
    }
}

/// Table facts for a replica created by a learner invitation (meta fills in the rest at the
/// next config sync).
pub(super) fn app_hint(gpid: Gpid) -> AppSummary {
    AppSummary {
        app_id: gpid.app_id,
        name: String::new(),
        partition_count: 0,
        envs: BTreeMap::new(),
        dropped: false,
    }
}
