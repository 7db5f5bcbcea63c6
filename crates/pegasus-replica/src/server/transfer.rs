//! Checkpoint transfer between replica servers: a learner fetches the files of the
//! checkpoint its primary made, in chunks, into its `learn.tmp/`.

use super::*;

pub(super) fn plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\'])
}

/// Fetches a checkpoint's files in chunks into `<replica>/learn.tmp/`. Runs on the async
/// runtime, one chunk in flight, so a large transfer never holds up control messages.
pub(super) async fn fetch(ctx: &Ctx, shared: &Shared, cp: &Checkpoint) -> Result<PathBuf, String> {
    if crate::failpoint::fire(crate::failpoint::FailPoint::LearnFetch) {
        return Err("fail point learn_fetch".into());
    }
    let handle: CheckpointHandle =
        postcard::from_bytes(&cp.data).map_err(|e| format!("bad checkpoint handle: {e}"))?;
    let dir = shared.dir.join("learn.tmp");
    let _ = tokio::fs::remove_dir_all(&dir).await;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let session = ctx.session(handle.server);
    for (file, size) in &handle.files {
        if !plain_name(file) {
            return Err(format!("bad file name {file:?}"));
        }
        let mut out = Vec::with_capacity(usize::try_from(*size).unwrap_or(0).min(64 << 20));
        while (out.len() as u64) < *size {
            let req = LearnFileRequest {
                gpid: handle.gpid,
                name: handle.name.clone(),
                file: file.clone(),
                offset: out.len() as u64,
                len: ctx.cfg.learn_chunk_bytes,
            };
            let chunk: LearnFileResponse =
                internal::call(&session, names::LEARN_FILE, &req, Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())?;
            if chunk.data.is_empty() {
                return Err(format!("{file}: short read at {}", out.len()));
            }
            out.extend_from_slice(&chunk.data);
        }
        let path = dir.join(file);
        tokio::fs::write(&path, &out)
            .await
            .map_err(|e| e.to_string())?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| e.to_string())?;
        f.sync_all().await.map_err(|e| e.to_string())?;
    }
    Ok(dir)
}
