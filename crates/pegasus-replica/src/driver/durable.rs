//! How a round's log records become durable: the replica's own log written and fsynced in
//! the round, or written unsynced and made durable by the node log (answered now or later);
//! and what a failure of either means.

use super::*;

impl<H: Host> PartitionDriver<H> {
    pub(super) fn flush_own_log(&mut self) {
        let started = std::time::Instant::now();
        let batch = self.appended - self.flushed;
        match self.log.flush() {
            Ok(_) => {
                metrics::histogram!("pegasus_replica_log_flush_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("pegasus_replica_log_flush_mutations").record(batch as f64);
                self.flushed = self.appended;
                self.event(Event::LogFlushed {
                    appended: self.flushed,
                });
            }
            Err(e) => self.log_failed(e.into()),
        }
    }

    /// Writes the round's records to the replica's own log (no sync) and hands them to
    /// the node log, whose sync acknowledges them ([`Input::LogSynced`]).
    pub(super) fn submit_to_node_log(&mut self) {
        let plog = PlogFile {
            fs: self.log.fs(),
            path: self.log.current_path().to_path_buf(),
            at: self.log.end(),
        };
        let records = match self.log.write_unsynced() {
            Ok(records) => records,
            Err(e) => return self.log_failed(e.into()),
        };
        match self.host.log_submit(plog, records, self.appended) {
            None => {}
            Some(Ok(())) => self.log_synced(self.appended),
            Some(Err(f)) => self.log_failed(f),
        }
    }

    pub(super) fn log_synced(&mut self, appended: u64) {
        if appended > self.flushed {
            self.flushed = appended;
            self.event(Event::LogFlushed { appended });
        }
    }

    pub(super) fn log_failed(&mut self, f: LogFailure) {
        if f.disk_full {
            self.event(Event::LogFull);
        }
        self.local_failure(
            "log_flush",
            f.transient,
            format!("mutation log flush failed: {}", f.reason),
        );
    }
}
