//! `pegasus bench run`: workloads in order against one target, printed and optionally
//! written as JSON; plus the workload options and the progress-bar run the suite shares.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{BenchError, Result};
use crate::keys::Distribution;
use crate::report::text;
use crate::{Mode, RunOptions, RunReport, Target, TargetSpec, WorkloadName, WorkloadSpec};

/// Workload parameters shared by `run` and `suite`.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Records loaded (the key space of reads and updates).
    pub records: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Records per hash key.
    pub sortkeys_per_hashkey: u64,
    /// Sort keys per multi_set / multi_get.
    pub batch: u32,
    /// Tokio worker threads of the load generator.
    pub threads: usize,
    /// Seed of the key choice.
    pub seed: u64,
}

impl WorkloadOptions {
    pub(crate) fn spec(
        &self,
        name: WorkloadName,
        distribution: Option<Distribution>,
    ) -> WorkloadSpec {
        let mut spec = WorkloadSpec::new(name, self.records);
        spec.value_size = self.value_size;
        spec.sortkeys_per_hashkey = self.sortkeys_per_hashkey;
        spec.batch = self.batch;
        if let Some(d) = distribution {
            spec.distribution = d;
        }
        spec
    }

    /// Closed-loop options for workload `w` at `concurrency`: `seconds` long, or until
    /// every record is in for a load.
    pub(crate) fn closed(&self, w: WorkloadName, concurrency: usize, seconds: u64) -> RunOptions {
        RunOptions {
            mode: Mode::Closed { concurrency },
            duration: Duration::from_secs(if w == WorkloadName::Load {
                3600
            } else {
                seconds
            }),
            max_ops: None,
            seed: self.seed,
        }
    }

    pub(crate) fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads.max(1))
            .enable_all()
            .build()
            .map_err(BenchError::Local)
    }
}

/// What `pegasus bench run` runs.
#[derive(Debug, Clone)]
pub struct RunCommandOptions {
    /// The target.
    pub target: TargetSpec,
    /// Workloads to run in order.
    pub workload: Vec<WorkloadName>,
    /// Key distribution (default: the workload's own).
    pub distribution: Option<Distribution>,
    /// Closed loop: outstanding operations; several sweep.
    pub concurrency: Vec<usize>,
    /// Open loop: operations per second (wins over `concurrency`).
    pub rate: Option<f64>,
    /// Open loop: most outstanding operations.
    pub max_inflight: usize,
    /// Seconds per run (a load stops earlier, when every record is in).
    pub duration: u64,
    /// Stop each run after this many operations.
    pub ops: Option<u64>,
    /// Write every report as a JSON array here (`-` for standard output).
    pub json: Option<PathBuf>,
    /// Workload parameters.
    pub workload_options: WorkloadOptions,
}

fn progress(label: &str, total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let template = if total.is_some() {
        "{msg:>28} [{bar:30}] {pos}/{len} ({per_sec}, {elapsed})"
    } else {
        "{msg:>28} {spinner} {pos} ops ({per_sec}, {elapsed})"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_string());
    bar
}

/// One run with a progress bar.
pub(crate) async fn run_one(
    target: &Target,
    label: &str,
    spec: &WorkloadSpec,
    opts: &RunOptions,
) -> Result<RunReport> {
    let total = (spec.name == WorkloadName::Load).then_some(spec.records);
    let bar = progress(label, total);
    let report = crate::run(target, spec, opts, &bar).await;
    bar.finish_and_clear();
    report
}

/// Connects to a target, naming it in the error.
pub(crate) async fn connect(spec: &TargetSpec) -> Result<Target> {
    Target::connect(spec)
        .await
        .map_err(|e| BenchError::Connect {
            target: spec.clone(),
            source: Box::new(e),
        })
}

/// Runs `pegasus bench run`: every workload at every concurrency (a load once), each report
/// printed; failure if any operation failed.
pub fn run_command(args: RunCommandOptions) -> Result<ExitCode> {
    let spec_target = &args.target;
    let rt = args.workload_options.runtime()?;
    let reports = rt.block_on(async {
        let target = connect(spec_target).await?;
        let modes: Vec<Mode> = match args.rate {
            Some(rate) => vec![Mode::Open {
                rate,
                max_inflight: args.max_inflight,
            }],
            None => args
                .concurrency
                .iter()
                .map(|&c| Mode::Closed { concurrency: c })
                .collect(),
        };
        let mut reports = Vec::new();
        for name in &args.workload {
            let spec = args.workload_options.spec(*name, args.distribution);
            // A load is one pass over the records, whatever the sweep.
            let modes = if *name == WorkloadName::Load {
                modes.get(..1).unwrap_or_default()
            } else {
                &modes[..]
            };
            for mode in modes {
                let opts = RunOptions {
                    mode: *mode,
                    duration: Duration::from_secs(if *name == WorkloadName::Load {
                        args.duration.max(3600)
                    } else {
                        args.duration
                    }),
                    max_ops: args.ops,
                    seed: args.workload_options.seed,
                };
                let r =
                    run_one(&target, &format!("{} {name}", target.kind()), &spec, &opts).await?;
                print!("{}", text(&r));
                reports.push(r);
            }
        }
        Ok::<_, BenchError>(reports)
    })?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&reports)?;
        if path.as_os_str() == "-" {
            println!("{json}");
        } else {
            std::fs::write(path, json).map_err(|source| BenchError::Write {
                path: path.clone(),
                source,
            })?;
        }
    }
    let failed = reports.iter().any(|r| r.errors > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
